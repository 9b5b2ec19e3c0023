"""Noun knowledge for the word-problem generator, derived from WordNet 3.0."""
