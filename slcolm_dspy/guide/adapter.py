"""A compact DSPy adapter: the task's own instructions, field labels, a one-line JSON skeleton.

DSPy's JSONAdapter spends ~2,200 characters of English scaffolding (field lists, JSON schemas)
before any input; this one spends a few dozen, which matters for small local models and for
the prompt budget (the paper's prompts average 1,855 characters). Output is one JSON object,
validated field by field against the signature's types.
"""

from __future__ import annotations

import json
import re
from typing import Any, get_args, get_origin

import dspy
import pydantic
from dspy.utils.exceptions import AdapterParseError

from slcolm_dspy.core.prompts import PromptTemplate, resolve_prompts

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def _skeleton(annotation: Any) -> Any:
    """A placeholder value showing the expected shape: [{"head": "…", ...}] for list[Model]."""
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (str,)
        return [_skeleton(item)]
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return {name: "…" for name in annotation.model_fields}
    return "…"


def _jsonable(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _desc(field: Any, name: str) -> str:
    extra = getattr(field, "json_schema_extra", None) or {}
    return str(extra.get("desc") or name)


class CompactJSONAdapter(dspy.Adapter):
    """Field labels and the output request in the words of a prompt template (the schema's;
    the shipped English one when none is given, e.g. for DummyLM in tests)."""

    def __init__(self, prompts: PromptTemplate | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompts = prompts or resolve_prompts("en", None)

    def format_field_description(self, signature: type[dspy.Signature]) -> str:
        return ""

    def format_field_structure(self, signature: type[dspy.Signature]) -> str:
        shape = {name: _skeleton(field.annotation) for name, field in signature.output_fields.items()}
        return self.prompts.text("adapter", "json_only", shape=json.dumps(shape, ensure_ascii=False))

    def format_task_description(self, signature: type[dspy.Signature]) -> str:
        return signature.instructions

    def format_system_message(self, signature: type[dspy.Signature]) -> str:
        return f"{self.format_task_description(signature)}\n{self.format_field_structure(signature)}"

    def format_user_message_content(
        self,
        signature: type[dspy.Signature],
        inputs: dict[str, Any],
        prefix: str = "",
        suffix: str = "",
        main_request: bool = False,
    ) -> str:
        parts = [prefix] if prefix else []
        for name, field in signature.input_fields.items():
            if name in inputs:
                parts.append(
                    self.prompts.text("adapter", "field", label=_desc(field, name), value=inputs[name])
                )
        if suffix:
            parts.append(suffix)
        return "\n".join(parts)

    def format_assistant_message_content(
        self,
        signature: type[dspy.Signature],
        outputs: dict[str, Any],
        missing_field_message: str | None = None,
    ) -> str:
        return json.dumps(
            {name: _jsonable(outputs.get(name, missing_field_message)) for name in signature.output_fields},
            ensure_ascii=False,
        )

    def format_field_with_value(self, fields_with_values: dict[Any, Any], role: str = "user") -> str:
        """Fields as this adapter writes them (DummyLM renders its answers with this)."""
        if role == "assistant":
            return json.dumps(
                {f.name: _jsonable(v) for f, v in fields_with_values.items()}, ensure_ascii=False
            )
        return "\n".join(
            self.prompts.text("adapter", "field", label=f.name, value=v)
            for f, v in fields_with_values.items()
        )

    def parse(self, signature: type[dspy.Signature], completion: str) -> dict[str, Any]:
        text = completion.strip()
        fenced = _FENCE.search(text)
        if fenced:
            text = fenced.group(1)
        start, end = text.find("{"), text.rfind("}")
        try:
            data = json.loads(text[start : end + 1]) if start >= 0 and end > start else None
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise AdapterParseError(
                "CompactJSONAdapter", signature, completion, "no JSON object in the reply"
            )
        parsed = {}
        for name, field in signature.output_fields.items():
            if name not in data:
                raise AdapterParseError(
                    "CompactJSONAdapter", signature, completion, f"field {name!r} missing"
                )
            try:
                parsed[name] = pydantic.TypeAdapter(field.annotation).validate_python(data[name])
            except pydantic.ValidationError as exc:
                raise AdapterParseError(
                    "CompactJSONAdapter", signature, completion, f"field {name!r}: {exc.errors()[0]['msg']}"
                ) from None
        return parsed
