"""The models offered, in OpenAI's shape: `whisper-1` (the default's alias) and the allowed."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel

from ingest_api.openai_compat.request import ALIAS
from ingest_api.settings import IngestSettings

_STARTED = int(time.time())  # a model's `created`: when this process began serving it


class Model(BaseModel):
    """A model in OpenAI's shape."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    """OpenAI's list of models."""

    object: Literal["list"] = "list"
    data: list[Model]


def models(settings: IngestSettings) -> list[Model]:
    """The models offered here: the alias of the default one, then the allowed ones."""
    names = [ALIAS, *settings.models_allowed()]
    return [Model(id=name, created=_STARTED, owned_by="voxflow") for name in names]
