"""File names of the generator's ONNX files, one place for every stage that reads or writes them.

optimum's seq2seq layout (export, quantize, package, serving's Python loop) and the backend
drop-in's one-file graph (export-backend, ``serving.backend``). Stdlib only.
"""

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"
DECODER_WITH_PAST_FILE = "decoder_with_past_model.onnx"
SEQ2SEQ_FILES = (ENCODER_FILE, DECODER_FILE, DECODER_WITH_PAST_FILE)
"""The three files optimum writes and the quantize stage rewrites, in that order."""
ONE_FILE_NAME = "t5_small_word_problem.onnx"
"""The backend's one-file generator (greedy loop inside; the name its code loads)."""
