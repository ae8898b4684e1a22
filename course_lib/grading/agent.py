"""The grader's agent inside a learner's kernel: it runs the learner's code on the grader's inputs and
sends back plain data, never Python objects.

The grader reads this file's source and executes it in the learner's kernel after the notebook has
run (the grader also imports it, for ``walk_objects``, which both sides must agree on). Nothing the
agent reports is trusted: the learner controls this process and may have changed anything in it.
The grader decides every verdict on its own side, from the values returned here, so a changed
agent can only send wrong values, which fail.

Protocol, one request per Jupyter ``execute_request``:

- request (grader -> kernel): a base64 pickle ``{"op", ...}``. Pickles only travel this way: the
  kernel may trust the grader, never the reverse. Every tensor of the arguments (parameters and
  buffers inside modules too) travels in a separate list and is referenced by index (a "twin"), so
  that the grader can follow what the learner's code did to each of them.
- reply (kernel -> grader): ``__course_grader__.reply``, read through ``user_expressions``: a base64
  string of an 8-byte header length, a JSON document and a safetensors blob. JSON holds the
  structure (tagged objects such as ``{"$tuple": [...]}``), safetensors the tensors.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import sys
from typing import Any

import torch
from torch import nn

MAX_ITEMS = 200_000      # elements of all containers in one reply
MAX_DEPTH = 40           # nesting of containers in one reply
PLAIN = (type(None), bool, int, float, str)


def walk_objects(value: Any, found: list | None = None, seen: set | None = None, depth: int = 0) -> list:
    """Modules, optimizers and generators in ``value``, in a fixed order (depth-first, dicts by insertion).

    Both sides walk the arguments of a call with this function, so that the i-th object here is the
    i-th object there.
    """
    found = [] if found is None else found
    seen = set() if seen is None else seen
    if depth > MAX_DEPTH or id(value) in seen:
        return found
    if isinstance(value, (nn.Module, torch.optim.Optimizer, torch.Generator)):
        seen.add(id(value))
        found.append(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            walk_objects(item, found, seen, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            walk_objects(item, found, seen, depth + 1)
    return found


class _Unpickler(pickle.Unpickler):
    """Resolves the grader's references: tensors ("t", i), generators ("g", i), live objects ("h", handle)."""

    def __init__(self, data: bytes, tensors: list, generators: list, objects: dict) -> None:
        super().__init__(io.BytesIO(data))
        self.tensors, self.generators, self.objects = tensors, generators, objects

    def persistent_load(self, pid):
        kind, index = pid
        if kind == "t":
            return self.tensors[index]
        if kind == "g":
            return self.generators[index]
        return self.objects[index]


class _Writer:
    """Turns a Python value into JSON-able data and a dict of tensors."""

    def __init__(self, agent: "Agent", twins: list, arg_objects: list) -> None:
        self.agent, self.twins, self.arg_objects = agent, twins, arg_objects
        self.tensors: dict[str, torch.Tensor] = {}
        self.outputs: list[torch.Tensor] = []   # returned tensors that require grad, for backward
        self.returned: list[torch.Tensor] = []  # every returned tensor, for in-place pokes
        self.items = 0

    def tensor(self, t: torch.Tensor) -> str:
        key = f"t{len(self.tensors)}"
        t = t.detach()
        if t.is_sparse or t.layout != torch.strided:
            t = t.to_dense()
        self.tensors[key] = t.to("cpu").contiguous().clone()
        return key

    def value(self, v: Any, depth: int = 0) -> Any:
        self.items += 1
        if self.items > MAX_ITEMS or depth > MAX_DEPTH:
            raise ValueError("the value is too large or too deeply nested to send to the grader")
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, int):
            return v if abs(v) < 2**53 else {"$int": str(v)}
        if isinstance(v, float):
            return {"$float": repr(v)} if v != v or v in (float("inf"), float("-inf")) else v
        if isinstance(v, complex):
            return {"$complex": [repr(v.real), repr(v.imag)]}
        if isinstance(v, torch.Tensor):
            return self.tensor_value(v)
        if type(v).__module__ == "numpy":
            return self.numpy_value(v)
        if isinstance(v, tuple):
            return {"$tuple": [self.value(x, depth + 1) for x in v]}
        if isinstance(v, list):
            return {"$list": [self.value(x, depth + 1) for x in v]}
        if isinstance(v, dict):
            return {"$dict": [[self.value(k, depth + 1), self.value(x, depth + 1)] for k, x in v.items()]}
        for index, obj in enumerate(self.arg_objects):
            if v is obj:
                return {"$arg": index}
        if isinstance(v, nn.Module):
            return self.module(v, depth)
        return self.handle(v)

    def tensor_value(self, t: torch.Tensor, output: bool = True) -> dict:
        for index, twin in enumerate(self.twins):
            if t is twin:
                return {"$twin": index}
        node = {"$tensor": self.tensor(t), "requires_grad": bool(t.requires_grad),
                "parameter": isinstance(t, nn.Parameter), "ref": len(self.returned)}
        self.returned.append(t)
        if t.requires_grad and output:
            node["output"] = len(self.outputs)
            self.outputs.append(t)
        return node

    def numpy_value(self, v: Any) -> Any:
        import numpy as np

        if isinstance(v, np.ndarray):
            if v.dtype == object:
                raise ValueError("a NumPy array of Python objects cannot be sent to the grader")
            return {"$ndarray": self.tensor(torch.from_numpy(np.ascontiguousarray(v)))}
        if isinstance(v, np.generic):
            return {"$npscalar": v.dtype.str, "value": self.value(v.item())}
        return self.handle(v)

    def handle(self, v: Any) -> dict:
        kind = type(v)
        return {"$object": self.agent.keep(v), "type": f"{kind.__module__}.{kind.__qualname__}",
                "callable": callable(v)}

    def plain(self, v: Any, depth: int = 0, tensors: bool = False) -> Any:
        """None, bools, numbers, strings (and tensors when asked) and tuples/lists of them, else a marker."""
        if isinstance(v, PLAIN):
            return self.value(v, depth)
        if tensors and isinstance(v, torch.Tensor):
            return self.tensor_value(v, output=False)
        if isinstance(v, (tuple, list)) and depth < 4 and len(v) <= 4096:
            items = [self.plain(x, depth + 1, tensors) for x in v]
            return {"$tuple": items} if isinstance(v, tuple) else {"$list": items}
        return {"$skip": True}

    def module(self, m: nn.Module, depth: int) -> dict:
        kind = type(m)
        skip = ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set", "training")
        attrs = {k: self.plain(v) for k, v in vars(m).items()
                 if k not in skip and "hook" not in k and not k.startswith("__")}
        return {
            "$module": self.agent.keep(m),
            "class": f"{kind.__module__}.{kind.__qualname__}",
            "training": bool(m.training),
            "attrs": {k: v for k, v in attrs.items() if v != {"$skip": True}},
            "params": [[n, None if p is None else self.tensor_value(p, output=False)] for n, p in m._parameters.items()],
            "buffers": [[n, None if b is None else self.tensor_value(b, output=False), n not in m._non_persistent_buffers_set]
                        for n, b in m._buffers.items()],
            "children": [[n, None if c is None else self.module(c, depth + 1)] for n, c in m._modules.items()],
        }

    def finish(self, doc: dict) -> str:
        from safetensors.torch import save

        header = json.dumps(doc).encode()
        blob = save(self.tensors) if self.tensors else b""
        return base64.b64encode(len(header).to_bytes(8, "little") + header + blob).decode("ascii")


class Agent:
    """Lives in the kernel as ``__course_grader__``; one method per request kind."""

    def __init__(self, namespace: dict) -> None:
        self.namespace = namespace
        self.objects: dict[int, Any] = {}       # handle -> an object of the learner's, kept alive
        self.calls: dict[int, tuple] = {}       # call id -> (outputs, differentiable inputs), for backward
        self.twin_tables: dict[int, list] = {}  # call id -> the twins of that call's arguments
        self.returned: dict[int, list] = {}     # call id -> the tensors that call returned
        self.next_handle = 1
        self.reply = ""

    def keep(self, obj: Any) -> int:
        for handle, kept in self.objects.items():
            if kept is obj:
                return handle
        handle, self.next_handle = self.next_handle, self.next_handle + 1
        self.objects[handle] = obj
        return handle

    def serve(self, request_b64: str) -> None:
        self.reply = ""
        try:
            request = pickle.loads(base64.b64decode(request_b64))  # written by the grader
            ops = {"lookup": self.lookup, "call": self.call, "getattr": self.get_attribute,
                   "backward": self.backward, "inplace_add": self.inplace_add, "release": self.release}
            self.reply = ops[request["op"]](request)
        except BaseException as err:  # noqa: BLE001 - anything goes back as a message
            self.reply = _Writer(self, [], []).finish({"$raise": _describe(err)})

    # --- requests ---------------------------------------------------------------------------------

    def lookup(self, request: dict) -> str:
        name = request["name"]
        writer = _Writer(self, [], [])
        if name not in self.namespace:
            return writer.finish({"$missing": name})
        return writer.finish({"result": writer.value(self.namespace[name])})

    def get_attribute(self, request: dict) -> str:
        writer = _Writer(self, [], [])
        try:
            value = getattr(self.objects[request["handle"]], request["name"])
        except BaseException as err:  # noqa: BLE001
            return writer.finish({"$raise": _describe(err)})
        return writer.finish({"result": writer.value(value)})

    def call(self, request: dict) -> str:
        twins = []
        for t, requires_grad, parameter, grad in request["tensors"]:
            twin = nn.Parameter(t, requires_grad) if parameter else t.requires_grad_(requires_grad)
            twin.grad = grad
            twins.append(twin)
        generators = []
        for state in request["generators"]:
            g = torch.Generator()
            g.set_state(state)
            generators.append(g)
        args, kwargs = _Unpickler(request["payload"], twins, generators, self.objects).load()
        target = self.objects[request["handle"]]
        if request.get("load"):
            _load_into(target, request["load"], twins)
        arg_objects = walk_objects([args, kwargs])
        versions = [t._version for t in twins]
        grads = [(t.grad, None if t.grad is None else t.grad._version) for t in twins]
        torch.set_rng_state(request["rng"])
        watch = _Watch(request.get("forbidden", []))
        error = None
        with torch.set_grad_enabled(request["grad_enabled"]):
            watch.start()
            try:
                result = target(*args, **kwargs)
            except BaseException as err:  # noqa: BLE001
                error = err
            finally:
                watch.stop()
        writer = _Writer(self, twins, arg_objects)
        doc: dict[str, Any] = {"forbidden_calls": watch.seen}
        if error is not None:
            doc["$raise"] = _describe(error)
        else:
            doc["result"] = writer.value(result)
        call_id = request["call"]
        candidates = [t for t in twins if t.requires_grad]
        reached = _leaves(writer.outputs)
        doc["connected"] = [i for i, t in enumerate(candidates) if id(t) in reached]
        self.calls[call_id] = (writer.outputs, [candidates[i] for i in doc["connected"]])
        doc["outputs"] = len(writer.outputs)
        doc["twins"] = [_twin_change(writer, t, v, g) for t, v, g in zip(twins, versions, grads)]
        doc["objects"] = [_object_state(writer, obj, twins) for obj in arg_objects]
        doc["rng"] = writer.tensor(torch.get_rng_state())
        self.twin_tables[call_id] = twins
        self.returned[call_id] = writer.returned
        return writer.finish(doc)

    def backward(self, request: dict) -> str:
        outputs, inputs = self.calls[request["call"]]
        grads = [torch.zeros_like(o) if g is None else g.to(o.dtype) for o, g in zip(outputs, request["grads"])]
        writer = _Writer(self, [], [])
        pairs = [(o, g) for o, g in zip(outputs, grads) if o.requires_grad]
        if not pairs or not inputs:
            return writer.finish({"grads": [None] * len(inputs)})
        got = torch.autograd.grad([o for o, _ in pairs], inputs, [g for _, g in pairs],
                                  retain_graph=True, allow_unused=True)
        return writer.finish({"grads": [None if g is None else writer.tensor(g) for g in got]})

    def inplace_add(self, request: dict) -> str:
        """Add a number in place to a twin of a call's arguments or to a returned tensor (the checks poke)."""
        kind, call_id, index = request["ref"]
        table = self.twin_tables[call_id] if kind == "twin" else self.returned[call_id]
        with torch.no_grad():
            table[index].add_(request["value"])
        return _Writer(self, [], []).finish({"result": None})

    def release(self, request: dict) -> str:
        self.objects.clear()
        self.calls.clear()
        self.twin_tables.clear()
        self.returned.clear()
        return _Writer(self, [], []).finish({"result": None})


# --- helpers ------------------------------------------------------------------------------------

def _describe(err: BaseException) -> dict:
    kind = type(err)
    text = str(err)
    return {"type": kind.__name__, "module": kind.__module__, "message": text[:2000],
            "not_implemented": isinstance(err, NotImplementedError)}


def _leaves(outputs: list) -> set[int]:
    """Ids of the leaf tensors the outputs' graph reaches (the inputs their gradients flow back to)."""
    found = {id(o) for o in outputs if o.grad_fn is None and o.requires_grad}
    stack, seen = [o.grad_fn for o in outputs if o.grad_fn is not None], set()
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        variable = getattr(fn, "variable", None)
        if variable is not None:
            found.add(id(variable))
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return found


def _twin_change(writer: _Writer, t: torch.Tensor, version: int, grad: tuple) -> dict:
    change: dict[str, Any] = {}
    if t._version != version:
        change["value"] = writer.tensor(t)
    before, grad_version = grad
    if t.grad is not before or (before is not None and before._version != grad_version):
        change["grad"] = None if t.grad is None else writer.tensor(t.grad)
    return change


def _object_state(writer: _Writer, obj: Any, twins: list) -> dict:
    if isinstance(obj, torch.Generator):
        return {"kind": "generator", "state": writer.tensor(obj.get_state())}
    if isinstance(obj, torch.optim.Optimizer):
        return {"kind": "optimizer", "state_dict": writer.value(obj.state_dict())}
    tensors = []
    for name, t in list(obj.named_parameters(recurse=True, remove_duplicate=False)) + \
            list(obj.named_buffers(recurse=True, remove_duplicate=False)):
        index = next((i for i, twin in enumerate(twins) if t is twin), None)
        if index is None:
            tensors.append([name, {"$tensor": writer.tensor(t), "grad": None if t.grad is None else writer.tensor(t.grad)}])
        else:
            tensors.append([name, {"$twin": index}])
    modules = list(obj.named_modules(remove_duplicate=False))
    return {
        "kind": "module",
        "modules": [[name, f"{type(m).__module__}.{type(m).__qualname__}", bool(m.training)] for name, m in modules],
        "tensors": tensors,
        "attrs": [[name, {k: writer.plain(v, tensors=True) for k, v in vars(m).items()
                          if not k.startswith("_") and k != "training"}]
                  for name, m in modules if type(m).__module__.startswith("course_lib.checks")],
    }


def _load_into(module: nn.Module, load: dict, twins: list) -> None:
    """Put the grader's copies of a returned module's parameters, buffers and modes into it."""
    for name, index in load["tensors"]:
        owner_name, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        if leaf in owner._parameters:
            owner._parameters[leaf] = twins[index]
        else:
            owner._buffers[leaf] = twins[index]
    for name, training in load["training"]:
        (module.get_submodule(name) if name else module).training = training


class _Watch:
    """Records calls made from outside course_lib to the functions an exercise may not call."""

    def __init__(self, forbidden: list[str]) -> None:
        self.codes: dict[Any, str] = {}
        for dotted in forbidden:
            for code in _codes_of(dotted):
                self.codes[(code.co_filename, code.co_firstlineno, code.co_name)] = dotted
        self.seen: list[str] = []
        self.previous = None

    def __call__(self, frame, event, arg):
        if event != "call":
            return
        code = frame.f_code
        dotted = self.codes.get((code.co_filename, code.co_firstlineno, code.co_name))
        if dotted and dotted not in self.seen:
            caller = frame.f_back.f_code.co_filename if frame.f_back is not None else ""
            if "course_lib" not in caller.replace("\\", "/").split("/"):
                self.seen.append(dotted)

    def start(self) -> None:
        if self.codes:
            self.previous = sys.getprofile()
            sys.setprofile(self)

    def stop(self) -> None:
        if self.codes:
            sys.setprofile(self.previous)


def _codes_of(dotted: str) -> list:
    """The code objects of a function, or of every method of a class, named by a dotted path."""
    import importlib
    import inspect

    module_name, _, attr = dotted.rpartition(".")
    obj = None
    while module_name:
        try:
            obj = importlib.import_module(module_name)
            break
        except ImportError:
            module_name, _, head = module_name.rpartition(".")
            attr = f"{head}.{attr}"
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if inspect.isclass(obj):
        members = [v for v in vars(obj).values() if inspect.isfunction(v)]
    else:
        members = [obj]
    return [inspect.unwrap(m).__code__ for m in members if hasattr(inspect.unwrap(m), "__code__")]
