"""Values that conform to a JSON schema, with plausible strings that mention the request (emulated)."""

from __future__ import annotations

import random
import re
from typing import Any, Final, cast

from parallel_mcp.emulator.seeded import FACETS, SeededRun
from parallel_mcp.schema_rules import as_schema, schema_types

_MAX_FILL_DEPTH: Final[int] = 12
"""Fill depth guard for recursive `$ref`s."""
_ORG_SUFFIXES: Final[tuple[str, ...]] = ("Labs", "Group", "Institute", "Systems", "Partners", "Holdings", "Collective")
_FIRST_NAMES: Final[tuple[str, ...]] = ("Alex", "Sam", "Jordan", "Robin", "Casey", "Morgan", "Avery", "Quinn")
_LAST_NAMES: Final[tuple[str, ...]] = ("Example", "Placeholder", "Sample", "Mock", "Fixture", "Stand-in")


def humanize(name: str) -> str:
    """A field's name in words: ``employeeCount`` and ``employee_count`` read ``employee count``."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ").split()
    return " ".join(words).lower() or "value"


class SchemaFiller:
    """Builds a value conforming to a JSON schema, with plausible strings that mention the input."""

    def __init__(self, run: SeededRun, rng: random.Random, root: dict[str, Any], items: tuple[int, int]) -> None:
        self.run = run
        self.rng = rng
        self.root = root
        self.items = items

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """Follow local `$ref`s (`#`, `#/$defs/...`), keeping sibling keywords such as `description`."""
        for _ in range(_MAX_FILL_DEPTH):
            ref = node.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#"):
                return node
            target: object = self.root
            for part in ref.removeprefix("#").strip("/").split("/") if ref != "#" else []:
                key = part.replace("~1", "/").replace("~0", "~")
                target = cast(dict[str, object], target).get(key) if isinstance(target, dict) else None
            resolved = as_schema(target)
            if resolved is None:
                return {k: v for k, v in node.items() if k != "$ref"}
            node = {**resolved, **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    def value(self, node: dict[str, Any], name: str, depth: int, index: int = 0) -> Any:
        node = self.resolve(node)
        if "const" in node:
            return node["const"]
        enum = node.get("enum")
        if isinstance(enum, list) and enum:
            options = cast(list[object], enum)
            return self.rng.choice([v for v in options if v is not None] or options)
        for union in ("anyOf", "oneOf"):
            raw_options = node.get(union)
            if isinstance(raw_options, list):
                options = [o for o in map(as_schema, cast(list[object], raw_options)) if o is not None]
                non_null = [o for o in options if schema_types(self.resolve(o)) != ["null"]]
                if options:
                    return self.value(self.rng.choice(non_null or options), name, depth, index)
        all_of = node.get("allOf")
        if isinstance(all_of, list):
            merged = {k: v for k, v in node.items() if k != "allOf"}
            for part in map(as_schema, cast(list[object], all_of)):
                if part is not None:
                    part = self.resolve(part)
                    props = {**cast(dict[str, Any], merged.get("properties", {})), **part.get("properties", {})}
                    merged = {**part, **merged, "properties": props} if props else {**part, **merged}
            return self.value(merged, name, depth, index)
        types = [t for t in schema_types(node) if t != "null"]
        if not types:
            if schema_types(node) == ["null"]:
                return None
            types = ["object" if "properties" in node else "array" if "items" in node else "string"]
        kind = types[0]
        if depth > _MAX_FILL_DEPTH:
            minimal: dict[str, Any] = {"object": {}, "array": [], "string": "", "number": 0, "integer": 0}
            return minimal.get(kind, False)
        if kind == "object":
            return self.object(node, depth)
        if kind == "array":
            return self.array(node, name, depth)
        if kind == "integer":
            return self.integer(name)
        if kind == "number":
            return self.number(name)
        if kind == "boolean":
            return self.rng.random() < 0.6
        return self.string(name, node, index)

    def object(self, node: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = as_schema(node.get("properties")) or {}
        result = {
            key: self.value(child, key, depth + 1)
            for key, raw in properties.items()
            if (child := as_schema(raw)) is not None
        }
        extra = as_schema(node.get("additionalProperties"))
        if not properties and extra is not None:
            result[self.run.words[0]] = self.value(extra, self.run.words[0], depth + 1)
        return result

    def array(self, node: dict[str, Any], name: str, depth: int) -> list[Any]:
        prefix = node.get("prefixItems")
        if isinstance(prefix, list):
            parts = [as_schema(p) or {} for p in cast(list[object], prefix)]
            return [self.value(part, name, depth + 1, i) for i, part in enumerate(parts)]
        items = as_schema(node.get("items")) or {"type": "string"}
        singular = name.removesuffix("s") if len(name) > 3 else name
        count = self.rng.randint(*self.items)
        return [self.value(items, singular, depth + 1, i) for i in range(count)]

    def integer(self, name: str) -> int:
        key = name.lower()
        if "year" in key or "founded" in key:
            return self.rng.randint(1990, 2025)
        if any(k in key for k in ("employee", "headcount", "count", "number", "num_", "total", "size")):
            return self.rng.randint(5, 5000)
        if any(k in key for k in ("rank", "position", "priority")):
            return self.rng.randint(1, 10)
        return self.rng.randint(1, 500)

    def number(self, name: str) -> float:
        key = name.lower()
        if any(k in key for k in ("percent", "share", "rate", "margin", "ratio", "growth", "cagr")):
            return round(self.rng.uniform(1, 60), 1)
        if any(k in key for k in ("revenue", "usd", "price", "cost", "funding", "valuation", "amount", "value")):
            return float(round(self.rng.uniform(1e5, 5e8), -3))
        if any(k in key for k in ("score", "rating")):
            return round(self.rng.uniform(1, 5), 1)
        return round(self.rng.uniform(1, 1000), 2)

    def string(self, name: str, node: dict[str, Any], index: int) -> str:
        key = name.lower()
        rng = self.rng
        run = self.run
        if any(k in key for k in ("url", "website", "link", "homepage")):
            return rng.choice(run.web.sources).url
        if "email" in key:
            return f"contact@{run.words[0]}-emulated.example"
        if "phone" in key:
            return f"+1-555-01{rng.randint(0, 99):02d}"
        if "date" in key or key.endswith("_at") or key == "when":
            return f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if "year" in key:
            return str(rng.randint(1990, 2025))
        if any(k in key for k in ("ceo", "founder", "person", "author", "contact", "executive", "expert", "leader")):
            return f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)} (emulated)"
        if key in {"name", "company", "organization", "organisation", "player"} or key.endswith(
            ("_name", "company", "player", "organization")
        ):
            return f"{run.words[index % len(run.words)].capitalize()} {rng.choice(_ORG_SUFFIXES)} (emulated)"
        if any(k in key for k in ("country", "region", "location", "headquarters", "city", "jurisdiction")):
            return rng.choice(("Exampleland", "North Placeholder", "Sample Region", "Mock County", "Testshire"))
        long_text = any(
            k in key
            for k in ("description", "summary", "overview", "reason", "note", "explanation", "analysis", "outlook")
        )
        if long_text or "description" in node:
            facet = rng.choice(FACETS)
            return f"Emulated {humanize(name)} for {run.short}, with placeholder notes on {facet}."
        return f"{rng.choice(FACETS).capitalize()} ({humanize(name)}) of {run.short}"
