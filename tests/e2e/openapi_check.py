"""Replies against api/openapi.json: the operation a request hits (path templates matched
exactly, the query ignored), whether the reply's status is documented for it, and whether
the body validates against that status's schema.

The validator covers the part of JSON Schema the document uses (type, enum, const,
required, properties, additionalProperties, items, minItems, maxItems, minLength,
maxLength, minimum, maximum, pattern, local $ref) and refuses any other validation keyword,
so the document cannot silently grow a rule nothing checks."""
from __future__ import annotations

import json
import re
from pathlib import Path

ANNOTATIONS = {"description", "writeOnly", "readOnly", "title", "examples", "deprecated", "format"}
CHECKED = {"type", "enum", "const", "required", "properties", "additionalProperties", "items", "minItems",
           "maxItems", "minLength", "maxLength", "minimum", "maximum", "pattern", "$ref"}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


class OpenApi:
    def __init__(self, path: Path):
        self.text = path.read_text()
        self.doc = json.loads(self.text)
        self.templates = []
        for template, item in self.doc["paths"].items():
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            self.templates.append((re.compile(f"^{pattern}$"), template, item))

    def operations(self) -> list[tuple[str, str]]:
        """Every (METHOD, path template) of the document."""
        return [(m.upper(), t) for _, t, item in self.templates for m in item if m in METHODS]

    def operation(self, method: str, path: str):
        """(template, operation) for a request, or None when no documented operation matches."""
        path = path.split("?", 1)[0]
        for pattern, template, item in self.templates:
            if pattern.match(path) and method.lower() in item:
                return template, item[method.lower()]
        return None

    def resolve(self, node: dict) -> dict:
        while "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), f"only local $ref: {ref}"
            target = self.doc
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def check_reply(self, method: str, path: str, status: int, body) -> list[str]:
        """Problems of one reply; [] when it fits or when no documented operation matches."""
        found = self.operation(method, path)
        if found is None:
            return []
        template, op = found
        responses = op["responses"]
        if str(status) not in responses:
            return [f"status {status} is not documented for {method} {template} "
                    f"(documented: {', '.join(sorted(responses))})"]
        response = self.resolve(responses[str(status)])
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return [f"{method} {template} {status}: no application/json schema"]
        return self.validate(schema, body, "$")

    def validate(self, schema: dict, value, where: str) -> list[str]:
        schema = self.resolve(schema)
        unknown = set(schema) - CHECKED - ANNOTATIONS
        if unknown:
            raise AssertionError(f"{where}: schema keywords this validator does not check: {sorted(unknown)}")
        problems = []
        kind = schema.get("type")
        if kind is not None and not any(type_matches(k, value) for k in ([kind] if isinstance(kind, str) else kind)):
            return [f"{where}: {value!r} is not of type {kind}"]
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{where}: {value!r} not one of {schema['enum']}")
        if "const" in schema and value != schema["const"]:
            problems.append(f"{where}: {value!r} is not {schema['const']!r}")
        if isinstance(value, str):
            if len(value) < schema.get("minLength", 0):
                problems.append(f"{where}: shorter than {schema['minLength']}")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                problems.append(f"{where}: longer than {schema['maxLength']}")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                problems.append(f"{where}: {value} < {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                problems.append(f"{where}: {value} > {schema['maximum']}")
        if isinstance(value, dict):
            for name in schema.get("required", []):
                if name not in value:
                    problems.append(f"{where}: missing {name!r}")
            props = schema.get("properties", {})
            extra = schema.get("additionalProperties", True)
            for name, member in value.items():
                if name in props:
                    problems += self.validate(props[name], member, f"{where}.{name}")
                elif extra is False:
                    problems.append(f"{where}: unexpected member {name!r}")
                elif isinstance(extra, dict):
                    problems += self.validate(extra, member, f"{where}.{name}")
        if isinstance(value, list):
            if len(value) < schema.get("minItems", 0):
                problems.append(f"{where}: fewer than {schema['minItems']} items")
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                problems.append(f"{where}: more than {schema['maxItems']} items")
            if "items" in schema:
                for i, member in enumerate(value):
                    problems += self.validate(schema["items"], member, f"{where}[{i}]")
        return problems


def type_matches(kind: str, value) -> bool:
    return {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "null": value is None,
    }[kind]
