"""The grader's side of a call into a learner's kernel: stand-ins for the learner's functions and objects.

A check written for a notebook receives the learner's function and calls it. When grading, it
receives a stand-in instead (``RemoteCallable``); calling it sends the arguments to the kernel,
runs the learner's function there and brings back what it returned, as data:

- tensors come back as tensors; when they require grad, they are joined to the caller's graph by
  ``_Bridge``, whose backward asks the kernel for the gradients (so ``out.sum().backward()`` fills
  ``.grad`` of the check's own tensors and modules, as if the function had run here);
- what the function did to its arguments is applied to the check's own objects: new values and
  gradients of tensors, parameters and buffers, modes of modules, optimizer states, generator
  states, the attributes of the checks' own recording modules, and torch's global random state;
- a module the learner built from ``torch.nn`` layers is rebuilt here from its description (so its
  forward pass is torch's own code); any other module or object stays in the kernel, behind a
  stand-in that forwards calls and attribute reads (``RemoteModule``, ``RemoteObject``).

Nothing from the kernel is unpickled: replies are JSON and safetensors. The check runs in the
grader's process, so no code in the notebook can change it or its verdict.
"""

from __future__ import annotations

import builtins
import importlib
import io
import pickle
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from course_lib.checks import Mistake, NotAttempted
from course_lib.grading.agent import walk_objects

Reply = tuple[dict, dict]  # (JSON document, tensors by key)


class RemoteError(Exception):
    """Base of the stand-in classes for exceptions the learner's code raised that are not Python's own."""


class RemoteTimeout(BaseException):
    """The learner's code ran past its time limit (a BaseException, so that no check can swallow it)."""


class KernelDied(BaseException):
    """The kernel ended while running the learner's code."""


class NoReply(BaseException):
    """The kernel answered, but not with a reply of the grader's agent (it was removed or broken)."""


_EXCEPTION_CLASSES: dict[str, type] = {}


def _exception(desc: dict) -> BaseException:
    """A local exception that reads like the one raised in the kernel."""
    name, message = str(desc.get("type", "Error"))[:80], str(desc.get("message", ""))
    if desc.get("not_implemented"):
        return NotImplementedError(message)
    if desc.get("module") == "course_lib.checks" and name in ("Mistake", "NotAttempted"):
        return Mistake(message) if name == "Mistake" else NotAttempted(message)
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        try:
            return builtin(message)
        except TypeError:
            pass
    if not name.isidentifier():
        name = "Error"
    kind = _EXCEPTION_CLASSES.setdefault(name, type(name, (RemoteError,), {}))
    return kind(message)


class _Pickler(pickle.Pickler):
    """Pickles arguments, sending every tensor and generator separately and stand-ins as handles."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.tensors: list[torch.Tensor] = []
        self.generators: list[torch.Generator] = []
        self._index: dict[int, tuple[str, int]] = {}

    def persistent_id(self, obj: Any):
        if isinstance(obj, (RemoteObject, RemoteModule)):
            return ("h", obj._remote_handle)
        if isinstance(obj, torch.Tensor):
            return self.tensor_id(obj)
        if isinstance(obj, torch.Generator):
            if id(obj) not in self._index:
                self._index[id(obj)] = ("g", len(self.generators))
                self.generators.append(obj)
            return self._index[id(obj)]
        return None

    def tensor_id(self, t: torch.Tensor) -> tuple[str, int]:
        if id(t) not in self._index:
            self._index[id(t)] = ("t", len(self.tensors))
            self.tensors.append(t)
        return self._index[id(t)]


class _Link:
    """What a bridged call needs for its backward pass."""

    def __init__(self, session: "Session", call_id: int, outputs: list[torch.Tensor], inputs: list[torch.Tensor]) -> None:
        self.session, self.call_id, self.outputs, self.inputs = session, call_id, outputs, inputs


class _Bridge(torch.autograd.Function):
    """Joins tensors computed in the kernel to the caller's graph; the backward pass runs in the kernel."""

    @staticmethod
    def forward(ctx, link: _Link, *inputs: torch.Tensor):
        ctx.link = link
        return tuple(t.clone() for t in link.outputs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: torch.Tensor):
        link = ctx.link
        got = link.session.backward(link.call_id, list(grads), link.inputs)
        return (None, *got)


class RemoteObject:
    """Stands in for an object that lives in the kernel; attribute reads are fetched as values."""

    def __init__(self, session: "Session", handle: int, remote_type: str) -> None:
        object.__setattr__(self, "_remote_session", session)
        object.__setattr__(self, "_remote_handle", handle)
        object.__setattr__(self, "_remote_type", remote_type)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._remote_session.get_attribute(self._remote_handle, name)

    def __repr__(self) -> str:
        return f"<{self._remote_type} in the learner's kernel>"


class RemoteCallable(RemoteObject):
    """A function, class or bound method of the learner's; calling it runs it in the kernel."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._remote_session.call(self._remote_handle, args, kwargs)


class RemoteModule(nn.Module):
    """A module of the learner's own class: its layers and tensors are here, its forward runs in the kernel.

    Before each call its parameters, buffers and modes are sent along, so the kernel computes with
    what the check sees; gradients come back through the bridge into these parameters.
    """

    def __init__(self, session: "Session", handle: int, remote_class: str) -> None:
        super().__init__()
        object.__setattr__(self, "_remote_session", session)
        object.__setattr__(self, "_remote_handle", handle)
        self.remote_class = remote_class

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._remote_session.call(self._remote_handle, args, kwargs, load=self)

    def extra_repr(self) -> str:
        return f"{self.remote_class}, running in the learner's kernel"


def _torch_module_class(path: str) -> type | None:
    """The class named by ``path`` when it is one of torch.nn's own layers, else None."""
    if not isinstance(path, str) or not path.startswith("torch.nn.modules."):
        return None
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        return None
    return cls if isinstance(cls, type) and issubclass(cls, nn.Module) else None


def _plain(value: Any, depth: int = 0) -> bool:
    if isinstance(value, (type(None), bool, int, float, str)):
        return True
    return isinstance(value, (tuple, list)) and depth < 4 and all(_plain(v, depth + 1) for v in value)


class _Reader:
    """Turns a reply's JSON document back into values; tensors come from the reply's safetensors."""

    def __init__(self, session: "Session", tensors: dict, twins: list, objects: list, call_id: int | None,
                 bridged: dict[int, torch.Tensor] | None = None) -> None:
        self.session, self.tensors, self.twins, self.objects = session, tensors, twins, objects
        self.call_id, self.bridged = call_id, bridged or {}

    def tensor(self, key: Any) -> torch.Tensor:
        if not isinstance(key, str) or key not in self.tensors:
            raise Mistake("the kernel sent back a malformed value (a missing tensor).")
        return self.tensors[key]

    def value(self, node: Any, depth: int = 0) -> Any:
        if depth > 60:
            raise Mistake("the value your function returned is nested too deeply.")
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not isinstance(node, dict) or len(node) == 0:
            raise Mistake("the kernel sent back a malformed value.")
        tag = next(iter(node))
        if tag == "$int":
            return int(node["$int"])
        if tag == "$float":
            return float(node["$float"])
        if tag == "$complex":
            return complex(float(node["$complex"][0]), float(node["$complex"][1]))
        if tag == "$tuple":
            return tuple(self.value(v, depth + 1) for v in node["$tuple"])
        if tag == "$list":
            return [self.value(v, depth + 1) for v in node["$list"]]
        if tag == "$dict":
            return {self.value(k, depth + 1): self.value(v, depth + 1) for k, v in node["$dict"]}
        if tag == "$twin":
            return self.twins[int(node["$twin"])]
        if tag == "$arg":
            return self.objects[int(node["$arg"])]
        if tag == "$tensor":
            return self.returned_tensor(node)
        if tag == "$ndarray":
            return self.tensor(node["$ndarray"]).numpy().copy()
        if tag == "$npscalar":
            return np.dtype(str(node["$npscalar"])).type(self.value(node["value"], depth + 1))
        if tag == "$module":
            return self.module(node, depth)
        if tag == "$object":
            kind = RemoteCallable if node.get("callable") else RemoteObject
            return kind(self.session, int(node["$object"]), str(node.get("type", "object")))
        raise Mistake("the kernel sent back a malformed value.")

    def returned_tensor(self, node: dict) -> torch.Tensor:
        if "output" in node and int(node["output"]) in self.bridged:
            t = self.bridged[int(node["output"])]
        else:
            t = self.tensor(node["$tensor"]).clone()
            if node.get("parameter"):
                t = nn.Parameter(t, requires_grad=bool(node.get("requires_grad")) and t.is_floating_point())
            elif node.get("requires_grad") and (t.is_floating_point() or t.is_complex()):
                t.requires_grad_(True)
        if self.call_id is not None and "ref" in node:
            t._course_poke = self.session.poke_for(("ret", self.call_id, int(node["ref"])))
        return t

    def module(self, node: dict, depth: int) -> nn.Module:
        cls = _torch_module_class(node.get("class"))
        if cls is None:
            m: nn.Module = RemoteModule(self.session, int(node["$module"]), str(node.get("class")))
        else:
            m = cls.__new__(cls)
            nn.Module.__init__(m)
            for key, raw in dict(node.get("attrs", {})).items():
                value = self.value(raw, depth + 1)
                if (isinstance(key, str) and not key.startswith("__") and _plain(value)
                        and not callable(getattr(cls, key, None)) and not isinstance(getattr(cls, key, None), property)):
                    m.__dict__[key] = value
        m.training = bool(node.get("training"))
        for name, raw in node.get("params", []):
            t = None if raw is None else self.value(raw, depth + 1)
            m._parameters[str(name)] = t if t is None or isinstance(t, nn.Parameter) else nn.Parameter(t, t.requires_grad)
        for name, raw, persistent in node.get("buffers", []):
            m.register_buffer(str(name), None if raw is None else self.value(raw, depth + 1), persistent=bool(persistent))
        for name, child in node.get("children", []):
            m._modules[str(name)] = None if child is None else self.module(child, depth + 1)
        return m

    # --- what the call did to the check's arguments ----------------------------------------------

    def apply_twins(self, changes: list) -> None:
        if len(changes) != len(self.twins):
            raise Mistake("the kernel sent back a malformed reply.")
        with torch.no_grad():
            for t, change in zip(self.twins, changes):
                if "value" in change:
                    _assign(t, self.tensor(change["value"]))
                if "grad" in change:
                    t.grad = None if change["grad"] is None else self.tensor(change["grad"]).to(t.dtype).clone()

    def apply_objects(self, states: list) -> None:
        if len(states) != len(self.objects):
            raise Mistake("the kernel sent back a malformed reply.")
        for obj, state in zip(self.objects, states):
            if isinstance(obj, torch.Generator):
                obj.set_state(self.tensor(state["state"]))
            elif isinstance(obj, torch.optim.Optimizer):
                try:
                    obj.load_state_dict(self.value(state["state_dict"]))
                except (ValueError, KeyError, TypeError, RuntimeError) as err:
                    raise Mistake(f"the optimizer's state after your function cannot be used ({err}); did your code "
                                  "change the optimizer's parameter groups?") from None
            else:
                self.apply_module(obj, state)

    def apply_module(self, module: nn.Module, state: dict) -> None:
        mine = list(module.named_modules(remove_duplicate=False))
        theirs = state.get("modules", [])
        if [name for name, _ in mine] != [row[0] for row in theirs]:
            raise Mistake("your function added, removed or replaced layers inside the module it was given; "
                          "change the module's parameters only, in place.")
        for (name, m), (_, _, training) in zip(mine, theirs):
            m.training = bool(training)
        local = dict(module.named_parameters(remove_duplicate=False)) | dict(module.named_buffers(remove_duplicate=False))
        with torch.no_grad():
            for name, node in state.get("tensors", []):
                if name not in local:
                    raise Mistake(f"your function added a tensor named {name!r} to the module it was given.")
                if "$twin" in node:
                    source = self.twins[int(node["$twin"])]
                    if source is not local[name]:
                        _assign(local[name], source)
                else:
                    _assign(local[name], self.tensor(node["$tensor"]))
                    grad = node.get("grad")
                    if isinstance(local[name], nn.Parameter):
                        local[name].grad = None if grad is None else self.tensor(grad).clone()
        by_name = dict(mine)
        for name, attrs in state.get("attrs", []):
            m = by_name.get(name)
            if m is None or not type(m).__module__.startswith("course_lib.checks"):
                continue
            for key, raw in attrs.items():
                if raw != {"$skip": True} and not key.startswith("_") and key in vars(m):
                    setattr(m, key, self.value(raw))


def _assign(target: torch.Tensor, value: torch.Tensor) -> None:
    """Copy ``value`` into ``target`` in place (the check keeps its own tensor objects)."""
    if tuple(value.shape) != tuple(target.shape):
        raise Mistake(f"your function changed the shape of a tensor it was given from {tuple(target.shape)} to "
                      f"{tuple(value.shape)}; modify tensors in place without resizing them.")
    with torch.no_grad():
        target.data.copy_(value.to(target.dtype))


class Session:
    """Calls into one kernel for one exercise.

    Args:
        rpc: sends one request to the kernel's agent and returns its reply, ``(document, tensors)``.
        forbidden: dotted names the learner's code may not call (the exercise's reference).
    """

    def __init__(self, rpc: Callable[[dict], Reply], forbidden: tuple[str, ...] = ()) -> None:
        self.rpc, self.forbidden = rpc, list(forbidden)
        self.next_call = 1
        self.names: dict[int, str] = {}

    def lookup(self, name: str) -> Any:
        """The learner's object called ``name``, as a stand-in; raises KeyError when there is none."""
        doc, tensors = self.rpc({"op": "lookup", "name": name})
        if "$missing" in doc:
            raise KeyError(name)
        if "$raise" in doc:
            raise _exception(doc["$raise"])
        value = _Reader(self, tensors, [], [], None).value(doc.get("result"))
        if isinstance(value, RemoteObject):
            object.__setattr__(value, "__name__", name)
        return value

    def get_attribute(self, handle: int, name: str) -> Any:
        doc, tensors = self.rpc({"op": "getattr", "handle": handle, "name": name})
        if "$raise" in doc:
            raise _exception(doc["$raise"])
        return _Reader(self, tensors, [], [], None).value(doc.get("result"))

    def call(self, handle: int, args: tuple, kwargs: dict, load: nn.Module | None = None) -> Any:
        buffer = io.BytesIO()
        pickler = _Pickler(buffer)
        load_spec = None
        if load is not None:
            tensors = list(load.named_parameters(remove_duplicate=False)) + list(load.named_buffers(remove_duplicate=False))
            load_spec = {"tensors": [[name, pickler.tensor_id(t)[1]] for name, t in tensors],
                         "training": [[name, m.training] for name, m in load.named_modules(remove_duplicate=False)]}
        pickler.dump((tuple(args), dict(kwargs)))
        call_id, self.next_call = self.next_call, self.next_call + 1
        request = {
            "op": "call", "handle": handle, "call": call_id, "payload": buffer.getvalue(), "load": load_spec,
            "tensors": [(t.detach().clone(), bool(t.requires_grad), isinstance(t, nn.Parameter),
                         t.grad.detach().clone() if t.is_leaf and t.grad is not None else None)
                        for t in pickler.tensors],
            "generators": [g.get_state() for g in pickler.generators],
            "rng": torch.get_rng_state(), "grad_enabled": torch.is_grad_enabled(), "forbidden": self.forbidden,
        }
        doc, tensors = self.rpc(request)
        objects = walk_objects([tuple(args), dict(kwargs)])
        reader = _Reader(self, tensors, pickler.tensors, objects, call_id)
        for index, t in enumerate(pickler.tensors):
            t._course_poke = self.poke_for(("twin", call_id, index))
        reader.apply_twins(doc.get("twins", []))
        reader.apply_objects(doc.get("objects", []))
        if "rng" in doc:
            torch.set_rng_state(reader.tensor(doc["rng"]))
        if doc.get("forbidden_calls"):
            name = ", ".join(str(n) for n in doc["forbidden_calls"])
            raise Mistake(f"your code calls {name}, the course's own implementation that this exercise is checked "
                          "against. The point is to write it yourself: replace that call with your own code.")
        if "$raise" in doc:
            raise _exception(doc["$raise"])
        outputs = _outputs(doc.get("result"), tensors)
        candidates = [t for t in pickler.tensors if t.requires_grad]
        try:
            inputs = [candidates[int(i)] for i in doc.get("connected", [])]
        except (IndexError, ValueError, TypeError):
            raise Mistake("the kernel sent back a malformed reply.") from None
        if outputs and inputs and torch.is_grad_enabled():
            order = sorted(outputs)
            link = _Link(self, call_id, [outputs[i] for i in order], inputs)
            reader.bridged = dict(zip(order, _Bridge.apply(link, *inputs)))
        # an output that needs grad but reaches none of the arguments (a tensor the learner's code made) is a leaf here
        return reader.value(doc.get("result"))

    def backward(self, call_id: int, grads: list, inputs: list[torch.Tensor]) -> list:
        doc, tensors = self.rpc({"op": "backward", "call": call_id,
                                 "grads": [None if g is None else g.detach().clone() for g in grads]})
        if "$raise" in doc:
            raise _exception(doc["$raise"])
        got = doc.get("grads", [])
        if len(got) != len(inputs):
            raise Mistake("the kernel sent back a malformed reply to a backward pass.")
        out = []
        for key, t in zip(got, inputs):
            g = None if key is None else tensors.get(key)
            if g is not None and tuple(g.shape) != tuple(t.shape):
                raise Mistake("the gradients of your function's output have the wrong shape.")
            out.append(None if g is None else g.to(t.dtype))
        return out

    def poke_for(self, ref: tuple) -> Callable[[float], None]:
        def poke(value: float) -> None:
            doc, _ = self.rpc({"op": "inplace_add", "ref": list(ref), "value": float(value)})
            if "$raise" in doc:
                raise _exception(doc["$raise"])
        return poke

    def release(self) -> None:
        self.rpc({"op": "release"})


def _outputs(node: Any, tensors: dict, found: dict | None = None, depth: int = 0) -> dict[int, torch.Tensor]:
    """The returned tensors that require grad, by output index (they are joined to the graph)."""
    found = {} if found is None else found
    if depth > 60:
        return found
    if isinstance(node, dict):
        if "$tensor" in node and "output" in node and node["$tensor"] in tensors:
            found[int(node["output"])] = tensors[node["$tensor"]]
        elif "$module" not in node:
            for value in node.values():
                _outputs(value, tensors, found, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _outputs(value, tensors, found, depth + 1)
    return found
