"""File names of every ONNX file, one place for every stage that reads or writes them.

The weakness artifact's graph, optimum's seq2seq layout of the generator (export, quantize,
package, serving's Python loop) and the backend drop-in's two one-file graphs (export-backend,
``serving.backend``). Stdlib only.
"""

WEAKNESS_MODEL_FILE = "model.onnx"
"""The weakness artifact's LightGBM graph (export_weakness, package, score, serving)."""

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"
DECODER_WITH_PAST_FILE = "decoder_with_past_model.onnx"
SEQ2SEQ_FILES = (ENCODER_FILE, DECODER_FILE, DECODER_WITH_PAST_FILE)
"""The three files optimum writes and the quantize stage rewrites, in that order."""
MERGED_DECODER_FILE = "decoder_model_merged.onnx"
"""optimum's merged decoder (If subgraphs): deleted after export, never quantized or shipped."""
ONE_FILE_NAME = "t5_small_word_problem.onnx"
"""The backend's one-file generator (greedy loop inside; the name its code loads)."""
WEAKNESS_BACKEND_FILE = "lightgbm_weakness_predictor.onnx"
"""The backend's weakness graph, calibration and action level in-graph."""
