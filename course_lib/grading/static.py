"""Read a submission's code without running it: what each graded function refers to.

Each exercise declares what its answer may not call (``@exercise(..., forbid=...)``): the course's
own implementation it is checked against. This module finds the learner's definition of each
graded function, follows the notebook's imports (``from course_lib.latent import slerp as s``,
``import course_lib.latent as L``) and the helper functions it calls, and reports a forbidden name
or dynamic loading (``exec``, ``importlib``, ...) that would hide one. The kernel watches the same
calls while the code runs (``agent._Watch``); this is the half that no code in the notebook can
switch off, since it runs in the grader.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

DYNAMIC = {"exec", "eval", "compile", "__import__", "importlib", "sys.modules", "globals", "builtins"}
ALWAYS_FORBIDDEN = ("course_lib.checks",)  # an answer never calls the checks or their references
TAMPERING = ("sys.setprofile", "sys.settrace", "threading.setprofile", "threading.settrace", "sys.monitoring",
             "course_lib.grading", "__course_grader__")


def _python(source: str) -> str:
    """Cell source with IPython syntax (magics, shell escapes) turned into Python."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - IPython missing or the cell unparsable: use the raw text
        return source


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


@dataclass
class NotebookCode:
    """The definitions and imports of a notebook's code cells, in execution order."""

    functions: dict[str, ast.AST] = field(default_factory=dict)   # name -> last def or class of that name
    aliases: dict[str, str] = field(default_factory=dict)         # local name -> dotted module or object
    tampering: list[str] = field(default_factory=list)            # what the notebook does to the grader
    unparsed: int = 0

    @classmethod
    def read(cls, sources: list[str]) -> "NotebookCode":
        code = cls()
        for source in sources:
            try:
                tree = ast.parse(_python(source))
            except SyntaxError:
                code.unparsed += 1
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    code._alias(node)
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    code.functions[node.name] = node
                elif isinstance(node, ast.Assign) and isinstance(node.value, (ast.Name, ast.Attribute)):
                    target = _dotted(node.value)
                    for t in node.targets:
                        if isinstance(t, ast.Name) and target:
                            code.aliases[t.id] = code.resolve(target)
            for node in ast.walk(tree):
                name = _dotted(node) if isinstance(node, (ast.Attribute, ast.Name)) else None
                if name:
                    full = code.resolve(name)
                    for bad in TAMPERING:
                        if (full == bad or full.startswith(bad + ".")) and bad not in code.tampering:
                            code.tampering.append(bad)
        return code

    def _alias(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    self.aliases[a.asname] = a.name
                else:
                    head = a.name.split(".")[0]
                    self.aliases.setdefault(head, head)
        elif node.module and node.level == 0:
            for a in node.names:
                if a.name != "*":
                    self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    def resolve(self, dotted: str) -> str:
        head, _, rest = dotted.partition(".")
        base = self.aliases.get(head)
        if base is None or base == dotted:
            return dotted
        return f"{base}.{rest}" if rest else base

    def references(self, name: str) -> tuple[set[str], set[str]]:
        """Dotted names used by the function ``name`` and the notebook helpers it calls; and dynamic loading."""
        used, dynamic, seen, todo = set(), set(), set(), [name]
        while todo:
            current = todo.pop()
            if current in seen or current not in self.functions:
                continue
            seen.add(current)
            body = self.functions[current]
            local = _LocalImports()
            local.visit(body)
            for node in ast.walk(body):
                if isinstance(node, (ast.Name, ast.Attribute)):
                    dotted = _dotted(node)
                    if not dotted:
                        continue
                    head = dotted.split(".")[0]
                    full = local.resolve(dotted) if head in local.aliases else self.resolve(dotted)
                    used.add(full)
                    if head in self.functions and head != current:
                        todo.append(head)
                    for bad in DYNAMIC:
                        if full == bad or full.startswith(bad + ".") or dotted == bad:
                            dynamic.add(bad)
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
                    if len(node.args) >= 2 and not isinstance(node.args[1], ast.Constant):
                        dynamic.add("getattr with a computed name")
        return used, dynamic

    def forbidden_use(self, names: list[str], forbidden: tuple[str, ...]) -> str | None:
        """A learner-readable reason why the answer may not count, or None."""
        forbidden = tuple(forbidden) + ALWAYS_FORBIDDEN
        targets = {bad: _resolve(bad) for bad in forbidden}
        for name in names:
            used, dynamic = self.references(name)
            objects = {u: _resolve(u) for u in used}
            for bad in forbidden:
                short = bad.rsplit(".", 1)[-1]
                hits = [u for u in used if u == bad or u.startswith(bad + ".")
                        or (targets[bad] is not None and objects[u] is targets[bad])]
                if hits:
                    return (f"your {name} uses {bad}, the course's own implementation that this exercise is checked "
                            f"against. The point is to write it yourself: replace {short} with your own code.")
            if dynamic:
                return (f"your {name} loads code dynamically ({', '.join(sorted(dynamic))}), which graded answers may "
                        "not do: the grader could not tell what it calls. Write the computation out.")
        return None


def _resolve(dotted: str):
    """The object a ``course_lib`` dotted name refers to (re-exports and old paths lead to the same object), or None.

    Only names inside ``course_lib`` are imported: the learner's code may name any module, and importing an
    arbitrary one could run code in the grader.
    """
    import importlib

    if not dotted.startswith("course_lib.") and dotted != "course_lib":
        return None
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


class _LocalImports(ast.NodeVisitor):
    """Imports inside a function body."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            for a in node.names:
                self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    def resolve(self, dotted: str) -> str:
        head, _, rest = dotted.partition(".")
        base = self.aliases[head]
        return f"{base}.{rest}" if rest else base
