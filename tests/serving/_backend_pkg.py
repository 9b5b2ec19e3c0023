"""A minimal backend-shaped package (the seed's layout) written to a temp dir for the drop-in tests.

``ai_models.py`` holds the seed's schemas with its field names; ``services/`` the two services
(``weakness_predictor.py`` calls ``serving.backend.predict_user_weakness``;
``word_problem_generator.py`` is the seed's plain pattern: one ``session.run`` on
``t5_small_word_problem.onnx`` with ``input_ids`` / ``attention_mask``, decode with
``skip_special_tokens=True``, then the project's one post-processing function;
``question_service.py`` the drop-in's ``generate_question`` and ``practice_set``); ``api.py`` the
FastAPI routers at ``/api/v1/ai`` and ``/api/v1/q/questions``. ``check.py`` serves it with
uvicorn on a free port, sends one request of each kind with urllib and prints the answers plus
any heavy module it imported.
"""

from __future__ import annotations

from pathlib import Path

AI_MODELS = """
from pydantic import BaseModel


class WeaknessPredictionInput(BaseModel):
    user_id: str
    average_score_per_topic: dict[str, float] = {}
    recent_quiz_scores: dict[str, list[float]] = {}
    time_spent_per_topic_minutes: dict[str, float] = {}


class PredictedWeakness(BaseModel):
    topic_id: str
    weakness_probability: float
    suggested_action_level: str


class WeaknessPredictionOutput(BaseModel):
    user_id: str
    predicted_weaknesses: list[PredictedWeakness]


class WordProblemInput(BaseModel):
    topic: str
    keywords: list[str]
    prompt_prefix: str = ""
    max_length: int = 64


class WordProblemOutput(BaseModel):
    generated_problem_text: str
"""

# The backend's question service calls the drop-in for AI word problems; the practice set is
# the drop-in's own response model.
QUESTION_SERVICE = """
import os

from serving import backend as ludora
from serving.schemas import PracticeSetInput, PracticeSetOutput, QuestionOutput

NOW = int(os.environ["CHECK_NOW"])


def generate_question(question_type: str, topic_id: str, grade: int | None) -> QuestionOutput:
    return ludora.generate_question(topic_id, grade=grade, seed=7)


def practice_set(data: dict) -> PracticeSetOutput:
    return ludora.practice_set(PracticeSetInput(**{**data, "now": NOW}))
"""

WEAKNESS_SERVICE = """
import os

import onnxruntime as ort

from ai_models import WeaknessPredictionInput, WeaknessPredictionOutput
from serving import backend as ludora
from serving.schemas import WeaknessPredictionInput as LudoraInput

MODEL_DIR = os.environ.get("LUDORA_BACKEND_DIR", "onnx_placeholder_models")
session = ort.InferenceSession(f"{MODEL_DIR}/lightgbm_weakness_predictor.onnx")
INPUT_NAME = session.get_inputs()[0].name
NOW = int(os.environ["CHECK_NOW"])


def predict_user_weakness(data: WeaknessPredictionInput) -> WeaknessPredictionOutput:
    out = ludora.predict_user_weakness(LudoraInput(**data.model_dump(), now=NOW))
    # the drop-in's answer read as the seed's own schema (its extra fields are dropped)
    return WeaknessPredictionOutput.model_validate(out.model_dump())
"""

GENERATOR_SERVICE = """
import os

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from ai_models import WordProblemInput, WordProblemOutput
from serving.prompt import format_prompt
from serving.realize import render_output

MODEL_DIR = os.environ.get("LUDORA_BACKEND_DIR", "onnx_placeholder_models")
TOKENIZER_NAME_OR_PATH = f"{MODEL_DIR}/tokenizer"
session = ort.InferenceSession(f"{MODEL_DIR}/t5_small_word_problem.onnx")
tokenizer = Tokenizer.from_file(f"{TOKENIZER_NAME_OR_PATH}/tokenizer.json")


def run_onnx_inference(input_ids, attention_mask, max_length):
    return session.run(
        None,
        {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "max_length": np.array([max_length], dtype=np.int64),
        },
    )


def generate_ai_word_problem(data: WordProblemInput) -> WordProblemOutput:
    prompt = format_prompt(data.topic, data.keywords, data.prompt_prefix)
    ids = np.array([tokenizer.encode(prompt).ids], dtype=np.int64)
    (sequences,) = run_onnx_inference(ids, np.ones_like(ids), data.max_length)
    text = tokenizer.decode(sequences[0].tolist(), skip_special_tokens=True)
    return WordProblemOutput(generated_problem_text=render_output(text, data.keywords).problem_text)
"""

API = """
from fastapi import APIRouter, FastAPI

from ai_models import (
    WeaknessPredictionInput,
    WeaknessPredictionOutput,
    WordProblemInput,
    WordProblemOutput,
)
from services.weakness_predictor import predict_user_weakness
from services.word_problem_generator import generate_ai_word_problem
from services import question_service

router = APIRouter(prefix="/api/v1/ai")
questions = APIRouter(prefix="/api/v1/q/questions")


@router.post("/predict-weakness", response_model=WeaknessPredictionOutput)
def predict_weakness(data: WeaknessPredictionInput) -> WeaknessPredictionOutput:
    return predict_user_weakness(data)


@router.post("/generate-word-problem", response_model=WordProblemOutput)
def generate_word_problem(data: WordProblemInput) -> WordProblemOutput:
    return generate_ai_word_problem(data)


@router.post("/practice-set")
def practice_set(data: dict) -> dict:
    return question_service.practice_set(data).model_dump()


@questions.get("/generate")
def generate_question(question_type: str, topic_id: str, grade: int | None = None) -> dict:
    return question_service.generate_question(question_type, topic_id, grade).model_dump()


app = FastAPI()
app.include_router(router)
app.include_router(questions)
"""

CHECK = """
import json
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request

import uvicorn

from api import app

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
threading.Thread(target=server.run, daemon=True).start()
for _ in range(200):
    if server.started:
        break
    time.sleep(0.05)


def post(path, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/ai/{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.loads(r.read())


def get(path, query):
    url = f"http://127.0.0.1:{port}/api/v1/q/questions/{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.status, json.loads(r.read())


requests = json.loads(sys.argv[1])
out = {
    "weakness": [post("predict-weakness", b) for b in requests["weakness"]],
    "word_problem": [post("generate-word-problem", b) for b in requests["word_problem"]],
    "practice": [post("practice-set", b) for b in requests.get("practice", [])],
    "question": [get("generate", q) for q in requests.get("question", [])],
    "heavy_modules": sorted(
        m for m in ("torch", "transformers", "lightgbm", "pandas", "sklearn", "mlflow", "onnx")
        if m in sys.modules
    ),
}
server.should_exit = True
print("RESULT " + json.dumps(out))
"""


def write_backend_package(root: Path) -> Path:
    """Write the package under ``root`` and return it (the dir to put on PYTHONPATH)."""
    (root / "services").mkdir(parents=True, exist_ok=True)
    (root / "services" / "__init__.py").write_text("")
    (root / "ai_models.py").write_text(AI_MODELS)
    (root / "services" / "weakness_predictor.py").write_text(WEAKNESS_SERVICE)
    (root / "services" / "word_problem_generator.py").write_text(GENERATOR_SERVICE)
    (root / "services" / "question_service.py").write_text(QUESTION_SERVICE)
    (root / "api.py").write_text(API)
    (root / "check.py").write_text(CHECK)
    return root
