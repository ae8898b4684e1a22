"""The grader's stand-ins give every check the same verdict as the learner's own functions would.

When grading, a check calls the learner's functions through ``course_lib.grading.remote``: the
arguments travel to the kernel's agent as pickles, the results come back as JSON and safetensors,
and what the function did to its arguments is applied to the check's own objects. Here the agent
runs in this process ("loopback"), with every value still going through that serialisation, and
every solution, stub and classic mistake of every lesson's test bank must get the same status and
the same message as when the check calls the function directly.
"""

import base64
import functools
import pickle

import pytest
import torch
from torch import nn

from course_lib.checks import hidden_seeds
from course_lib.grading.agent import Agent
from course_lib.grading.remote import RemoteCallable, Session
from course_lib.grading.sandbox import decode_reply

import test_checks
import test_checks_cyclegan
import test_checks_editing
import test_checks_gan
import test_checks_pix2pix
import test_checks_responsible
import test_checks_style_transfer
import test_checks_stylegan
import test_checks_vae


def loopback(namespace: dict, forbid=()) -> Session:
    """A session whose agent runs in this process (with the same serialisation as a real kernel)."""
    agent = Agent(namespace)

    def rpc(request: dict):
        agent.serve(base64.b64encode(pickle.dumps(request)).decode())
        return decode_reply(agent.reply)

    return Session(rpc, forbid)


def remote_verdict(check, functions, offset: int = 0, forbid=()):
    namespace = {getattr(fn, "__name__", f"learner_{i}"): fn for i, fn in enumerate(functions)}
    session = loopback(namespace, forbid)
    proxies = [session.lookup(name) for name in namespace]
    with hidden_seeds(offset):
        return check(*proxies)


def as_tuple(fns):
    return tuple(fns) if isinstance(fns, (tuple, list)) else (fns,)


def bank():
    cases = []
    for module in (test_checks, test_checks_gan, test_checks_vae, test_checks_editing, test_checks_responsible):
        cases += [(f"{c.__name__}-reference-{i}", c, (r,)) for i, (c, r) in enumerate(module.REFERENCES)]
        cases += [(f"mistake-{name}", c, (w,)) for name, c, w, _ in module.MISTAKES]
    cases += [(f"{c.__name__}-reference-{i}", c, as_tuple(f)) for i, (c, f) in enumerate(test_checks_pix2pix.REFERENCES)]
    cases += [(f"mistake-{name}", c, as_tuple(f)) for name, c, f, _ in test_checks_pix2pix.MISTAKES]
    style = test_checks_style_transfer                 # lesson 11's bank: (check, function[, expected message])
    cases += [(f"{c.__name__}-reference-{i}", c, (r,)) for i, (c, r) in enumerate(style.REFERENCES)]
    cases += [(f"mistake-11-{i}-{c.exercise_id}", c, (w,)) for i, (c, w, _) in enumerate(style.MISTAKES)]
    for module in (test_checks_cyclegan, test_checks_stylegan):
        cases += [(f"reference-{name}", c, as_tuple(f)) for name, c, f in module.REFERENCES]
        cases += [(f"mistake-{name}", *_unwrap(c, f)) for name, c, f, _ in module.MISTAKES]
    return cases


def _unwrap(check, fn):
    """08.3's bank wraps the check in a lambda that pairs one wrong loss with the right other one."""
    if hasattr(check, "exercise_id"):
        return check, as_tuple(fn)
    wrong = dict(zip(check.__code__.co_freevars, (cell.cell_contents for cell in check.__closure__)))
    cyc = test_checks_cyclegan
    if "wrong_d" in wrong:
        return cyc.lesson08.check_lsgan_losses, (wrong["wrong_d"], cyc.solution_lsgan_g_loss)
    return cyc.lesson08.check_lsgan_losses, (cyc.solution_lsgan_d_loss, wrong["wrong_g"])


BANK = bank()


@pytest.mark.parametrize("name, check, functions", BANK, ids=[b[0] for b in BANK])
def test_remote_verdict_equals_the_local_one(name, check, functions):
    local = check(*functions)
    remote = remote_verdict(check, functions)
    assert (remote.status, remote.message) == (local.status, local.message)


def test_the_bank_covers_every_exercise_of_every_lesson():
    import importlib
    import pkgutil

    import course_lib.checks

    lessons = [importlib.import_module(f"course_lib.checks.{m.name}") for m in pkgutil.iter_modules(course_lib.checks.__path__)
               if m.name.startswith("lesson")]
    checked = {check.exercise_id for _, check, _ in BANK}
    every = {c.exercise_id for m in lessons for c in m.EXERCISES}
    assert checked == every


def test_a_stub_is_not_attempted_through_the_bridge():
    def stub(*args):
        raise NotImplementedError("Exercise 02.4: replace this line with your code")

    from course_lib.checks import lesson02
    assert remote_verdict(lesson02.check_slerp, (stub,)).status == "not_attempted"


def test_gradients_flow_back_through_the_bridge_to_the_callers_tensors_and_modules():
    layer = nn.Linear(3, 2)

    def learner(x, m):
        return (m(x) * x[:, :2]).sum()

    session = loopback({"f": learner})
    f = session.lookup("f")
    assert isinstance(f, RemoteCallable)
    x = torch.randn(4, 3, requires_grad=True)
    out = f(x, layer)
    out.backward()
    x_ref = x.detach().clone().requires_grad_()
    ref_layer = nn.Linear(3, 2)
    ref_layer.load_state_dict(layer.state_dict())
    (ref_layer(x_ref) * x_ref[:, :2]).sum().backward()
    assert torch.allclose(out, (ref_layer(x_ref) * x_ref[:, :2]).sum())
    assert torch.allclose(x.grad, x_ref.grad)
    assert torch.allclose(layer.weight.grad, ref_layer.weight.grad)


def test_what_the_function_does_to_its_arguments_comes_back():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    g = torch.Generator().manual_seed(3)

    def learner(model, opt, g, x):
        model.eval()
        loss = model(x).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        x.mul_(2)
        return torch.rand(2, generator=g), loss.item()

    local = {"model": model, "opt": opt}
    import copy
    ref_model = copy.deepcopy(model)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.5)
    ref_g = torch.Generator().manual_seed(3)
    x, x_ref = torch.ones(3, 2), torch.ones(3, 2)
    draws, loss = loopback({"f": learner}).lookup("f")(local["model"], local["opt"], g, x)
    ref_draws, ref_loss = learner(ref_model, ref_opt, ref_g, x_ref)
    assert torch.equal(draws, ref_draws) and loss == ref_loss
    assert torch.equal(x, x_ref)                                       # the in-place change of an argument
    assert not model.training                                           # the mode
    for a, b in zip(model.parameters(), ref_model.parameters()):       # the optimiser's update and the grads
        assert torch.equal(a, b) and torch.equal(a.grad, b.grad)
    assert torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=ref_g))   # the generator's state


def test_a_module_built_from_torch_layers_is_rebuilt_here():
    def up_block(cin, cout):
        return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    block = loopback({"f": up_block}).lookup("f")(6, 4)
    assert type(block) is nn.Sequential and type(block[0]) is nn.ConvTranspose2d
    assert block[0].bias is None and block[0].stride == (2, 2)
    assert block(torch.randn(2, 6, 5, 5)).shape == (2, 4, 10, 10)


def test_a_learner_class_stays_in_the_kernel_behind_a_stand_in():
    class Doubler(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(2.0))

        def forward(self, x):
            return self.scale * x

    class Counter:
        def __init__(self):
            self.n = 0

        def bump(self, k):
            self.n += k
            return self.n

    session = loopback({"make": lambda: Doubler(), "Counter": Counter})
    m = session.lookup("make")()
    x = torch.ones(3, requires_grad=True)
    m(x).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), 2.0)) and m.scale.grad.item() == 3.0
    counter = session.lookup("Counter")()
    assert counter.bump(2) == 2 and counter.bump(3) == 5 and counter.n == 5
    with pytest.raises(AttributeError):
        counter.missing


def test_exceptions_keep_their_kind_and_message():
    def bad(x):
        raise ValueError("I give up")

    with pytest.raises(ValueError, match="I give up"):
        loopback({"f": bad}).lookup("f")(1)

    class Odd(Exception):
        pass

    def odd():
        raise Odd("strange")

    with pytest.raises(Exception, match="strange") as info:
        loopback({"f": odd}).lookup("f")()
    assert type(info.value).__name__ == "Odd"

    def leaves():
        raise SystemExit(3)          # never re-raised as SystemExit in the grader

    with pytest.raises(Exception) as info:
        loopback({"f": leaves}).lookup("f")()
    assert type(info.value).__name__ == "SystemExit" and not isinstance(info.value, SystemExit)


def test_a_call_of_the_forbidden_reference_is_refused_with_a_message():
    from course_lib import latent
    from course_lib.checks import Mistake

    def lazy_slerp(z0, z1, t):
        return latent.slerp(z0, z1, t)

    f = loopback({"f": lazy_slerp}, forbid=("course_lib.latent.slerp",)).lookup("f")
    with pytest.raises(Mistake, match="course_lib.latent.slerp"):
        f(torch.randn(2, 4), torch.randn(2, 4), 0.5)


def test_an_internal_call_of_the_reference_by_an_allowed_function_is_fine():
    from course_lib import latent

    f = loopback({"f": latent.interpolation_path}, forbid=("course_lib.latent.slerp",)).lookup("f")
    assert f(torch.randn(1, 4), torch.randn(1, 4), 5).shape[0] == 5


@functools.cache
def base_statuses() -> tuple[str, ...]:
    return tuple(check(*functions).status for _, check, functions in BANK)


@pytest.mark.parametrize("offset", [4242, 271828])
def test_hidden_seeds_keep_every_verdict(offset):
    """The grader draws the cases' seeds per run: every solution must still pass and every mistake still fail."""
    changed = []
    for (name, check, functions), base in zip(BANK, base_statuses()):
        with hidden_seeds(offset):
            if check(*functions).status != base:
                changed.append(name)
    assert changed == []


def test_hidden_seeds_change_the_cases():
    from course_lib.checks import case_seed

    assert case_seed(3) == 3
    with hidden_seeds(100):
        assert case_seed(3) == 103
    assert case_seed(3) == 3


def test_each_check_takes_the_names_its_notebook_cell_passes():
    """The grader looks the learner's functions up by the check's parameter names."""
    import importlib
    import inspect
    import re
    from pathlib import Path

    import nbformat

    for path in sorted((Path(__file__).resolve().parents[1] / "solutions").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        module = importlib.import_module(nb.metadata["course"]["checks"])
        source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        for check in module.EXERCISES:
            call = re.search(rf"\b{check.__name__}\(([^)]*)\)", source)
            assert call, f"{path.name}: no cell calls {check.__name__}"
            assert [a.strip() for a in call[1].split(",")] == list(inspect.signature(check).parameters), path.name
