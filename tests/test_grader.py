"""The grader: full marks for solutions, zero for untouched exercises, learners' accidents recorded as
failures, and a bank of cheating and hostile submissions that earn nothing and harm nobody.

Every notebook here is graded by the real command (or ``grade_notebook``, which starts the same
worker): a kernel in a sandbox, the checks in the grader's process on hidden seeds.
"""

import base64
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch

from course_lib.checks import MIME, hidden_seeds, lesson02
from course_lib.grade import grade_notebook, main, parse_size
from course_lib.grading.sandbox import Limits, Sandbox, running_as_root
from course_lib import latent

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
ROOT_ONLY = pytest.mark.skipif(not running_as_root(), reason="kernels run as a user of their own only when the grader is root")
RECORD_KEYS = {"notebook", "lesson", "score", "max_score", "exercises", "grader_version", "seed", "seconds", "notes"}
EXERCISE_KEYS = {"id", "title", "status", "message", "points", "max_points", "seconds"}

SLERP = """cos = (z0 * z1).sum(-1, keepdim=True) / (z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True))
omega = torch.arccos(cos.clamp(-1, 1))
line = (1 - t) * z0 + t * z1
arc = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
return torch.where(torch.sin(omega).abs() < 1e-6, line, arc)"""
TO_MODEL_RANGE = """x = pixels.float() / 127.5 - 1.0
return x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)"""


def statuses(record):
    return {e["id"]: e["status"] for e in record["exercises"]}


def by_id(record):
    return {e["id"]: e for e in record["exercises"]}


def fill(source: Path, out: Path, answers: dict[str, str] = None, cells: list[tuple] = ()) -> Path:
    """A copy of ``source`` with some stubs replaced by code and extra cells inserted.

    ``cells``: (position, source) pairs; position is an index into the code cells, "end", or
    ("before", text): just before the first cell containing ``text``.
    """
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        for name, body in (answers or {}).items():
            stub = f'raise NotImplementedError("Exercise {name}: replace this line with your code")'
            if stub in cell.source:
                indent = cell.source.split(stub)[0].split("\n")[-1]
                cell.source = cell.source.replace(stub, body.replace("\n", "\n" + indent))
    for position, src in cells:
        new = nbformat.v4.new_code_cell(src)
        if position == "end":
            nb.cells.append(new)
        elif isinstance(position, tuple):
            index = next(i for i, c in enumerate(nb.cells) if position[1] in c.source)
            nb.cells.insert(index, new)
        else:
            nb.cells.insert(position, new)
    nbformat.write(nb, out)
    return out


def run_cli(*args: str, timeout: float = 900):
    done = subprocess.run([sys.executable, "-m", "course_lib.grade", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")], done.stderr


# ---------------------------------------------------------------------------------------------
# Solutions, exercises, the record, the gradebook
# ---------------------------------------------------------------------------------------------

def test_every_solution_scores_full_marks_and_every_exercise_zero(tmp_path):
    gradebook = tmp_path / "grades.csv"
    code, records, err = run_cli(*map(str, SOLUTIONS + EXERCISES), "--json", "--jobs", "2", "--csv", str(gradebook),
                                 timeout=1800)
    assert code == 1 and len(records) == len(SOLUTIONS) + len(EXERCISES), err
    for record in records:
        assert set(record) == RECORD_KEYS and all(set(e) == EXERCISE_KEYS for e in record["exercises"])
        assert record["max_score"] >= 3 and record["grader_version"] and isinstance(record["seed"], int)
        if "/solutions/" in record["notebook"]:
            assert record["score"] == record["max_score"], record
        else:
            assert record["score"] == 0 and set(statuses(record).values()) == {"not_attempted"}, record
    rows = list(csv.DictReader(gradebook.open()))
    assert len(rows) == len(records)
    assert rows[0]["notebook"].endswith("00_setup_and_tour.ipynb") and rows[0]["00.1"] == "1"
    last = Path(rows[-1]["notebook"]).name[:2]  # the last lesson's exercise notebook: not attempted
    assert rows[-1]["score"] == "0" and rows[-1][f"{last}.1"] == "0"


def test_infinite_loop_exception_and_deleted_name_become_recorded_failures(tmp_path):
    nb = fill(ROOT / "exercises" / "00_setup_and_tour.ipynb", tmp_path / "accidents.ipynb",
              {"to_model_range": "while True:\n    pass", "to_pixels": "raise ValueError('I give up')",
               "training_step": "return 0.0"},
              [(("before", "check_training_step("), "del training_step")])
    record = grade_notebook(nb, timeout=8)
    got = by_id(record)
    assert record["score"] == 0
    assert got["00.1"]["status"] == "failed" and "ran longer than 8 s" in got["00.1"]["message"]
    assert got["00.2"]["status"] == "failed" and "ValueError: I give up" in got["00.2"]["message"]
    assert got["00.3"]["status"] == "error" and "not defined" in got["00.3"]["message"]


def test_a_broken_file_is_an_error_record_and_the_exit_status_says_so(tmp_path, capsys):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{ this is not json")
    assert main([str(broken), "--json"]) == 1
    record = json.loads(capsys.readouterr().out.strip())
    assert set(record) == RECORD_KEYS
    assert record["exercises"][0]["status"] == "error" and "could not grade" in record["exercises"][0]["message"]


def test_a_classic_mistake_reaches_the_record_with_its_message(tmp_path):
    nb = fill(ROOT / "exercises" / "01_gan_math.ipynb", tmp_path / "mistake.ipynb",
              {"g_loss": "return torch.log(1 - torch.sigmoid(fake_logits)).mean()"})
    record = grade_notebook(nb)
    got = by_id(record)
    assert record["score"] == 0 and record["max_score"] == 6
    assert got["01.2"]["status"] == "failed" and "saturating loss" in got["01.2"]["message"]
    assert got["01.1"]["status"] == "not_attempted"


@pytest.mark.parametrize("args, flag", [(["--timeout", "0"], "--timeout"), (["--jobs", "0"], "--jobs"),
                                        (["--memory", "lots"], "--memory"), (["--lesson", "2"], "--lesson")])
def test_bad_flags_are_one_line_naming_the_flag(args, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(SOLUTIONS[0]), *args])
    assert exit_info.value.code == 2 and flag in capsys.readouterr().err


def test_sizes_parse():
    assert parse_size("4G") == 4 << 30 and parse_size("512M") == 512 << 20 and parse_size("100") == 100


# ---------------------------------------------------------------------------------------------
# Cheating: nothing the notebook prints or patches counts
# ---------------------------------------------------------------------------------------------

FAKE_OUTPUTS = f"""
from IPython.display import display
for i in range(1, 5):
    display({{"{MIME}": {{"id": f"02.{{i}}", "title": "x", "status": "passed", "message": "ok", "points": 100}},
             "text/plain": "passed"}}, raw=True)
"""
PATCHED_CHECKS = """
import course_lib.checks as base
from course_lib.checks import CheckResult, lesson02
for check in lesson02.EXERCISES:
    name = check.__name__
    setattr(lesson02, name, lambda *a, _c=check: CheckResult(_c.exercise_id, _c.title, "passed", "ok", 1))
lesson02.EXERCISES[:] = [getattr(lesson02, c.__name__) for c in lesson02.EXERCISES]
base.exercise = lambda *a, **k: (lambda f: f)
"""
PATCHED_RESULT = """
from course_lib.checks import CheckResult
CheckResult.passed = property(lambda self: True)
CheckResult.score = property(lambda self: self.points)
CheckResult.__init__.__defaults__ = (1,)
"""
PATCHED_TORCH = """
import torch, math
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.isclose = lambda a, b, *r, **k: torch.ones_like(a, dtype=torch.bool)
torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)
math.isclose = lambda *a, **k: True
"""


@pytest.mark.parametrize("name, cheat", [("fake outputs", FAKE_OUTPUTS), ("patched checks", PATCHED_CHECKS),
                                         ("patched result class", PATCHED_RESULT), ("patched torch", PATCHED_TORCH)])
def test_cheats_earn_nothing_while_a_correct_answer_keeps_its_point(name, cheat, tmp_path):
    nb = fill(ROOT / "exercises" / "02_dcgan.ipynb", tmp_path / "cheat.ipynb", {"slerp": SLERP},
              [(("before", "import"), cheat) if name == "patched torch" else ("end", cheat)])
    record = grade_notebook(nb)
    assert statuses(record) == {"02.1": "not_attempted", "02.2": "not_attempted", "02.3": "not_attempted",
                                "02.4": "passed"}, record
    assert record["score"] == 1


def test_a_wrong_answer_behind_patched_comparisons_still_fails(tmp_path):
    nb = fill(ROOT / "exercises" / "02_dcgan.ipynb", tmp_path / "cheat.ipynb",
              {"slerp": "return (1 - t) * z0 + t * z1"}, [("end", PATCHED_TORCH)])
    assert statuses(grade_notebook(nb))["02.4"] == "failed"


def test_edited_and_deleted_check_cells_change_nothing(tmp_path):
    nb = nbformat.read(ROOT / "exercises" / "02_dcgan.ipynb", as_version=4)
    for cell in nb.cells:
        if "check_slerp(" in cell.source:
            cell.source = f"display({{'{MIME}': {{'id': '02.4', 'status': 'passed'}}}}, raw=True)"
        elif "check_d_step(" in cell.source:
            cell.source = "pass"
    path = tmp_path / "edited.ipynb"
    nbformat.write(nb, path)
    assert grade_notebook(path)["score"] == 0
    solved = fill(ROOT / "solutions" / "02_dcgan.ipynb", tmp_path / "solved.ipynb")
    book = nbformat.read(solved, as_version=4)
    book.cells = [c for c in book.cells if "check_" not in c.source]      # no check cells at all
    nbformat.write(book, solved)
    record = grade_notebook(solved)
    assert record["score"] == record["max_score"] == 4                      # the answers are right all the same


def test_saved_outputs_of_cells_that_never_ran_do_not_count(tmp_path):
    """The issue's os._exit case: an unsolved notebook carrying a solution notebook's passing outputs."""
    solved = nbformat.read(ROOT / "solutions" / "00_setup_and_tour.ipynb", as_version=4)
    unsolved = nbformat.read(ROOT / "exercises" / "00_setup_and_tour.ipynb", as_version=4)
    for mine, theirs in zip(unsolved.cells, solved.cells):
        if mine.cell_type == "code":
            mine.outputs = theirs.get("outputs", [])
    unsolved.cells.insert(2, nbformat.v4.new_code_cell("import os\nos._exit(0)"))
    path = tmp_path / "exit.ipynb"
    nbformat.write(unsolved, path)
    record = grade_notebook(path)
    assert record["score"] == 0 and set(statuses(record).values()) == {"not_attempted"}
    assert any("ended the kernel" in note for note in record["notes"])


# ---------------------------------------------------------------------------------------------
# No answer by import; no memorised outputs
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, message", [
    ("from course_lib.latent import slerp as ready\nreturn ready(z0, z1, t)", "course_lib.latent.slerp"),
    ("import course_lib.latent as L\nreturn L.slerp(z0, z1, t)", "course_lib.latent.slerp"),
    ("return helper(z0, z1, t)", "course_lib.latent.slerp"),
    ("import importlib\nreturn importlib.import_module('course_lib.lat' + 'ent').slerp(z0, z1, t)", "dynamically"),
    ("return eval('__import__(\"course_lib.latent\").latent.slerp')(z0, z1, t)", "dynamically"),
])
def test_an_answer_that_calls_the_reference_fails_and_says_so(answer, message, tmp_path):
    helper = "from course_lib import latent as _l\ndef helper(a, b, t):\n    return _l.slerp(a, b, t)"
    nb = fill(ROOT / "exercises" / "02_dcgan.ipynb", tmp_path / "import.ipynb", {"slerp": answer},
              [(("before", "def slerp"), helper)])
    got = by_id(grade_notebook(nb))["02.4"]
    assert got["status"] == "failed" and message in got["message"], got


def test_a_hidden_call_of_the_reference_is_caught_while_it_runs(tmp_path):
    """An alias the static reading cannot follow (a name bound at run time) is caught by the kernel's watch."""
    nb = fill(ROOT / "exercises" / "02_dcgan.ipynb", tmp_path / "hidden.ipynb", {"slerp": "return ref(z0, z1, t)"},
              [(("before", "def slerp"), "import course_lib.latent\nref = vars(course_lib.latent)['slerp']")])
    got = by_id(grade_notebook(nb))["02.4"]
    assert got["status"] == "failed" and "course_lib.latent.slerp" in got["message"], got


def _memorised_slerp_source() -> str:
    """A slerp that replays the reference's outputs for the inputs the notebook's own check uses."""
    table = {}

    def recorder(z0, z1, t):
        out = latent.slerp(z0, z1, t)
        table[_key(z0, z1, t)] = out.detach().clone()
        return out

    with hidden_seeds(0):
        assert lesson02.check_slerp(recorder).passed
    blob = base64.b64encode(_dump(table)).decode()
    return (f"import base64, hashlib, io\nTABLE = torch.load(io.BytesIO(base64.b64decode('{blob}')))\n"
            "def key(z0, z1, t):\n"
            "    return hashlib.sha256(z0.numpy().tobytes() + z1.numpy().tobytes() + repr(float(t)).encode()).hexdigest()\n")


def _key(z0, z1, t):
    return hashlib.sha256(z0.numpy().tobytes() + z1.numpy().tobytes() + repr(float(t)).encode()).hexdigest()


def _dump(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_memorised_outputs_pass_the_notebooks_check_but_not_the_graders(tmp_path):
    table_cell = _memorised_slerp_source()
    answer = "return TABLE.get(key(z0, z1, t), z0)"
    namespace: dict = {"torch": torch}
    exec(table_cell, namespace)
    exec("def slerp(z0, z1, t):\n    " + answer, namespace)
    with hidden_seeds(0):
        assert lesson02.check_slerp(namespace["slerp"]).passed          # it fools the notebook's own check
    nb = fill(ROOT / "exercises" / "02_dcgan.ipynb", tmp_path / "memorised.ipynb", {"slerp": answer},
              [(("before", "def slerp"), table_cell)])
    assert statuses(grade_notebook(nb))["02.4"] == "failed"


# ---------------------------------------------------------------------------------------------
# Hostile submissions harm nobody
# ---------------------------------------------------------------------------------------------

@ROOT_ONLY
def test_a_submission_cannot_touch_its_neighbours_or_the_instructors_files(tmp_path):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    victim = submissions / "victim.ipynb"
    victim.write_bytes((ROOT / "solutions" / "00_setup_and_tour.ipynb").read_bytes())
    instructor = tmp_path / "instructor_notes.txt"
    instructor.write_text("grades so far")
    os.chmod(tmp_path, 0o755)
    before = {p: p.read_bytes() for p in (victim, instructor)}
    attack = f"""
import os, shutil, glob
results = {{}}
for target in [{str(victim)!r}, {str(instructor)!r}]:
    for how, act in [("read", lambda p: open(p).read()), ("write", lambda p: open(p, "a").write("x")),
                     ("delete", os.remove)]:
        try:
            act(target)
            results[(target, how)] = "done"
        except Exception as err:
            results[(target, how)] = type(err).__name__
for folder in [{str(submissions)!r}, {str(tmp_path)!r}]:
    try:
        open(os.path.join(folder, "planted.txt"), "w").write("x")
    except Exception:
        pass
"""
    attacker = fill(ROOT / "solutions" / "00_setup_and_tour.ipynb", submissions / "attacker.ipynb",
                    cells=[("end", attack)])
    before[attacker] = attacker.read_bytes()
    code, records, err = run_cli(str(victim), str(attacker), "--json", "--jobs", "2")
    assert [r["score"] for r in records] == [3, 3], err
    for path, content in before.items():
        assert path.read_bytes() == content, f"{path} changed"
    assert not (submissions / "planted.txt").exists() and not (tmp_path / "planted.txt").exists()


def _uid_processes(uid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                status = Path(f"/proc/{name}/status").read_text()
            except OSError:
                continue
            uid_line = next((l for l in status.splitlines() if l.startswith("Uid:")), "")
            if uid_line.split()[1:2] == [str(uid)]:
                found.append(int(name))
    return found


@ROOT_ONLY
def test_a_fork_bomb_is_contained_and_every_process_ends_with_the_submission(tmp_path):
    bomb = ("import os, subprocess\n"
            "subprocess.Popen(['sleep', '600'], start_new_session=True)\n"   # a daemon left behind
            "while True:\n"
            "    try:\n"
            "        os.fork()\n"
            "    except OSError:\n"
            "        pass\n")
    nb = fill(ROOT / "solutions" / "00_setup_and_tour.ipynb", tmp_path / "bomb.ipynb",
              cells=[(("before", "def to_pixels"), bomb)])
    start = time.monotonic()
    record = grade_notebook(nb, timeout=10, uid=61999)
    assert time.monotonic() - start < 240
    assert record["score"] == 3, record
    assert any("cell" in note for note in record["notes"])
    assert _uid_processes(61999) == []


def test_an_output_flood_is_cut_and_the_answers_still_count(tmp_path):
    flood = "for _ in range(200):\n    print('x' * 1_000_000)"
    nb = fill(ROOT / "solutions" / "00_setup_and_tour.ipynb", tmp_path / "flood.ipynb", cells=[(3, flood)])
    record = grade_notebook(nb, limits=Limits(output_bytes=5 << 20))
    assert record["score"] == 3 and any("printed more than 5 MB" in n for n in record["notes"]), record


def test_a_cell_that_swallows_interrupts_costs_one_time_limit_not_one_per_cell(tmp_path):
    stubborn = ("import time\nwhile True:\n    try:\n        time.sleep(1)\n    except KeyboardInterrupt:\n        pass")
    nb = fill(ROOT / "solutions" / "00_setup_and_tour.ipynb", tmp_path / "stubborn.ipynb", cells=[(3, stubborn)])
    start = time.monotonic()
    record = grade_notebook(nb, timeout=6)
    assert record["score"] == 3, record
    assert time.monotonic() - start < 90


def test_filling_the_disk_is_stopped(tmp_path):
    filler = "with open('big.bin', 'wb') as f:\n    for _ in range(1000):\n        f.write(b'0' * (1 << 20))"
    nb = fill(ROOT / "solutions" / "00_setup_and_tour.ipynb", tmp_path / "filler.ipynb", cells=[(3, filler)])
    record = grade_notebook(nb, limits=Limits(disk_bytes=50 << 20))
    assert record["score"] == 3, record
    assert any("wrote more than 50 MB" in note for note in record["notes"]), record["notes"]


def test_the_sandbox_holds_only_a_copy_and_points_home_and_temp_inside(tmp_path):
    source = tmp_path / "mine.ipynb"
    source.write_bytes((ROOT / "exercises" / "00_setup_and_tour.ipynb").read_bytes())
    (tmp_path / "secret.txt").write_text("s")
    with Sandbox(source, Limits()) as box:
        box.start()
        run = box.execute("import os, tempfile", user_expressions={
            "where": "(os.getcwd(), sorted(os.listdir('.')), os.environ['HOME'], tempfile.gettempdir(), "
                     "sorted(k for k in os.environ if k.startswith('SECRET')))"})
        cwd, listing, home, temp, secrets = eval(run.user_expressions["where"]["data"]["text/plain"])
        work = str(box.work)
        base = box.base
    assert cwd == work and "mine.ipynb" in listing and "secret.txt" not in listing
    assert home.startswith(work) and temp.startswith(work) and secrets == []
    assert not base.exists()                                 # removed afterwards


@pytest.fixture(autouse=True)
def _no_secret_in_the_environment(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "instructor-only")


@ROOT_ONLY
def test_as_root_the_kernel_is_another_user_who_cannot_see_the_submissions_folder(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    source = folder / "mine.ipynb"
    source.write_bytes((ROOT / "exercises" / "00_setup_and_tour.ipynb").read_bytes())
    (folder / "neighbour.ipynb").write_text("{}")
    os.chmod(tmp_path, 0o755)
    probe = ("import os\n"
             "def attempt(act):\n"
             "    try:\n"
             "        act()\n"
             "        return 'done'\n"
             "    except Exception as err:\n"
             "        return type(err).__name__\n")
    with Sandbox(source, Limits(), uid=61998) as box:
        box.start()
        run = box.execute(probe, user_expressions={"seen": (
            f"(os.getuid(), os.listdir({str(folder)!r}) if os.access({str(folder)!r}, os.R_OK) else 'denied', "
            f"attempt(lambda: open({str(folder / 'neighbour.ipynb')!r}).read()), "
            f"attempt(lambda: open({str(folder / 'new.txt')!r}, 'w')), "
            "attempt(lambda: os.listdir('/root')), attempt(lambda: open('here.txt', 'w').write('ok')))")})
        uid, listing, read, write, root_home, own = eval(run.user_expressions["seen"]["data"]["text/plain"])
    assert uid == 61998 and own == "done"
    assert read != "done" and write != "done"
    assert listing in ([], "denied")       # an empty folder is shown in place of the submissions folder
    assert root_home != "done"
    assert (folder / "neighbour.ipynb").read_text() == "{}" and not (folder / "new.txt").exists()
