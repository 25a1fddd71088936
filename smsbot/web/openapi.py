"""The OpenAPI 3 document served at ``/api/v1/openapi.json``, generated, not written.

Schemas come from the shapes the views answer with (``shapes.py``, pydantic → JSON Schema);
paths, methods and path parameters from the blueprint's routes; summaries from the views'
docstrings; which shape answers which status, and which errors a call can return, from
the ``@operation`` each view declares. schemathesis checks the document against the running
app in the test suite.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue, models_json_schema

from smsbot.vocabulary import MAX_ID
from smsbot.web import shapes

View = TypeVar("View", bound=Callable[..., Any])

ERRORS = {
    400: "The body is not a JSON object.",
    401: "Missing, unknown or revoked API token.",
    404: "No such resource at this clinic.",
    409: "Conflicts with the current state.",
    422: "A field or query parameter is missing, unknown or invalid; `field` names it.",
    429: "Too many requests for this token; retry after the Retry-After header.",
}
EVERY_CALL = (401, 422, 429)  # 422 also for an unknown query parameter
REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    """What a view takes and answers, as the document tells clients."""

    responses: dict[int, tuple[str, type[BaseModel] | None]]
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    public: bool = False  # no token needed

    @property
    def answers(self) -> set[type[BaseModel]]:
        return {shape for _, shape in self.responses.values() if shape is not None}


def operation(**spec: Any) -> Callable[[View], View]:
    """Declare a view's contract (see ``Operation``); the document and the views read it."""

    def declare(view: View) -> View:
        view.operation = Operation(**spec)  # type: ignore[attr-defined]
        return view

    return declare


def operation_of(view: Callable[..., Any]) -> Operation | None:
    return getattr(view, "operation", None)


class _Generator(GenerateJsonSchema):
    """Pydantic's JSON Schema without what would mislead a reader: a title on every field (the
    names say it) and ``default: null`` (an absent field is left as it is, not cleared)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def default_schema(self, schema: Any) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if json_schema.get("default", ...) is None:
            del json_schema["default"]
        return json_schema


def document(app: Flask, blueprint: str = "api", prefix: str = "/api/v1") -> dict[str, Any]:
    """The OpenAPI document of ``blueprint``'s routes in ``app``."""
    paths: dict[str, dict[str, Any]] = {}
    answers: set[type[BaseModel]] = {shapes.Error}
    bodies: set[type[BaseModel]] = set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if rule.endpoint.partition(".")[0] != blueprint:
            continue
        view = app.view_functions[rule.endpoint]
        spec = operation_of(view)
        if spec is None:
            raise LookupError(f"{rule.endpoint} declares no @operation")
        answers |= spec.answers
        bodies |= {spec.body} if spec.body is not None else set()
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix(prefix))
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(view, spec, list(rule.arguments))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "smsbot clinic API",
            "version": "1.0.0",
            "description": "Enroll families for follow-up check-ins and handle alerts. Every resource "
            "is scoped to the clinic owning the token: other clinics' ids answer 404.",
        },
        "servers": [{"url": prefix}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(answers, bodies),
            "responses": {str(code): _error(text) for code, text in ERRORS.items()},
        },
    }


def _schemas(answers: set[type[BaseModel]], bodies: set[type[BaseModel]]) -> dict[str, Any]:
    """Answers as they are written, request bodies as they are read."""
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((shape, "serialization") for shape in sorted(answers, key=lambda shape: shape.__name__)),
        *((shape, "validation") for shape in sorted(bodies, key=lambda shape: shape.__name__)),
    ]
    _, schemas = models_json_schema(modes, ref_template=REF, schema_generator=_Generator)
    definitions = schemas.get("$defs", {})
    for schema in definitions.values():
        schema.pop("title", None)
    return definitions


def _operation(view: Callable[..., Any], spec: Operation, path_parameters: list[str]) -> dict[str, Any]:
    summary, _, description = (inspect.getdoc(view) or "").partition("\n")
    answer: dict[str, Any] = {"summary": summary.strip()}
    if description.strip():
        answer["description"] = " ".join(description.split())
    if spec.public:
        answer["security"] = []
    parameters = [_path_parameter(name) for name in path_parameters]
    if spec.query is not None:
        parameters += _query_parameters(spec.query)
    if parameters:
        answer["parameters"] = parameters
    if spec.body is not None:
        content = {"application/json": {"schema": _ref(spec.body)}}
        answer["requestBody"] = {"required": spec.body_required, "content": content}
    responses: dict[str, Any] = {}
    for status, (text, shape) in spec.responses.items():
        schema = _ref(shape) if shape is not None else {"type": "object"}
        responses[str(status)] = {"description": text, "content": {"application/json": {"schema": schema}}}
    for status in (*(() if spec.public else EVERY_CALL), *spec.errors):
        responses[str(status)] = {"$ref": f"#/components/responses/{status}"}
    answer["responses"] = responses
    return answer


def _path_parameter(name: str) -> dict[str, Any]:
    """Every path parameter is an id: larger ones cannot exist (MAX_ID)."""
    schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query_parameters(query: type[BaseModel]) -> list[dict[str, Any]]:
    schema = query.model_json_schema(schema_generator=_Generator)
    parameters = []
    for name, prop in schema["properties"].items():
        parameter = {"name": name, "in": "query", "schema": prop}
        if "description" in prop:
            parameter["description"] = prop.pop("description")
        parameters.append(parameter)
    return parameters


def _ref(shape: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=shape.__name__)}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(shapes.Error)}}}
