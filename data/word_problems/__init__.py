"""Word-problem corpora: embedded templates, real-corpus adapters, keywords, splits."""
