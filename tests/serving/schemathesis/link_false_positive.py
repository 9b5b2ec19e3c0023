"""A schemathesis false positive, reproduced: POST /notes echoes any note_id; GET /tags takes only
``^[a-z]+$`` ids. schemathesis infers a link between the two, sends a note_id taken from a
response (``__main__``) to GET /tags, gets the 422 the schema promises and reports
"ST202 Schema-valid request rejected" (schemathesis 4.32.5):

    uvicorn tests.serving.schemathesis.link_false_positive:app --port 8741 &
    schemathesis run http://127.0.0.1:8741/openapi.json --phases stateful \
        --checks positive_data_acceptance --seed 1 -w 1 --generation-database none
"""

from typing import Annotated

from fastapi import FastAPI, Query
from pydantic import BaseModel, Field

app = FastAPI()


class NoteIn(BaseModel):
    note_id: Annotated[str, Field(min_length=1, max_length=8)]


class NoteOut(BaseModel):
    note_id: str


@app.post("/notes", response_model=NoteOut)
def create(body: NoteIn) -> NoteOut:
    return NoteOut(note_id=body.note_id)


@app.get("/tags")
def tags(note_id: Annotated[str, Query(pattern="^[a-z]+$", max_length=8)]) -> dict:
    return {"note_id": note_id, "tags": []}
