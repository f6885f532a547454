"""The lessons as a learner sees them: JupyterLab in a real browser (headless Chromium driven by Playwright).

A private JupyterLab serves a copy of the lessons on 127.0.0.1 (a free port, a random token, its own settings,
workspaces, config and runtime folders; autosave off, every cell rendered). Each lesson is opened in a fresh page
and run with Run → Run All Cells at the panels' defaults, as a learner would, and then checked: the notebook was not
marked modified when it opened, no cell is left `[*]` or unrun, no output is an error or stray stderr text, every
widget output is drawn as a widget (not its text repr), every figure is an image that loaded, every live curve
(`LiveCurves`, redrawn in place as training logs) was drawn, and every formula was typeset by MathJax. Lesson 01 also
gets a prompt typed into its "Try your own prompt" box. Screenshots, one per screenful, go to
runs/browser/<lesson>/page-NN.png (git-ignored) so a failing run can be looked at.

The default lessons, 01 and 06 (about 20 s and 50 s of Run All on the course's 2-core machine), are a cheap pair
that between them shows every kind of output the checks look at: 01 a `ConfigPanel` of sliders, the "Try your own
prompt" box and tqdm's widget progress bars; 06 live curves (of a 2-process DeepSpeed run), formulas and figures;
both HTML tables. Lesson 07, the default before, showed the same in 107 s. The notebooks-only test
`test_default_lessons_cover_every_kind_of_output` keeps it so when the lessons change.

Training lessons need their upstream stages: `make test` runs this file once lesson 04 and the lessons it runs have
ended (a separate pytest call), so artifacts/ holds them. The lessons run on a private copy of the stages they read
(`RLHF_ARTIFACTS` of the server and its kernels), each copy checked against its stage.json: what they write (lesson
01's evaluation of the base model, lesson 06's two-process SFT) stays there, and the lessons that `make test` runs
beside this test read and write artifacts/ undisturbed. Without Chromium (a learner's laptop) the test skips and
says how to enable it.
Choose lessons with RLHF_BROWSER_LESSONS=01,04 and the browser with RLHF_CHROMIUM=/path/to/chromium.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LESSONS = "01,06"
LESSONS = [n.strip() for n in os.environ.get("RLHF_BROWSER_LESSONS", DEFAULT_LESSONS).split(",") if n.strip()]
CHROMIUM = os.environ.get("RLHF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "runs" / "browser"
NEEDS = {"00": [], "01": ["base"], "02": ["base"], "03": ["sft"], "04": ["sft", "rm"], "05": ["ppo", "ppo_ptx"],
         "06": ["sft", "rm"], "07": ["sft", "rm", "ppo"], "08": ["sft", "rm", "ppo", "ppo_ptx", "dpo"],
         "09": ["base", "sft", "ppo"]}           # stages a lesson reads (it would train them first otherwise)
TRIES = ["base", "sft", "ppo", "rm"]              # and what a "Try your own prompt" box reads where they exist
RUN_TIMEOUT_S = 480                               # one lesson's Run All
START_TIMEOUT_S = 60
VIEWPORT = {"width": 1366, "height": 900}
ENABLE = ("the browser test needs Debian's Chromium and the playwright package: `apt-get install chromium` and "
          "`pip install -e '.[test]'` (.ci/run does both); RLHF_CHROMIUM=/path/to/chromium names another build")
SETTINGS = {                                      # JupyterLab user settings of the private server
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
}
# What the default lessons must show between them (in their code; and formulas, in their markdown)
COVERAGE = {"a ConfigPanel of widgets": r"\bConfigPanel\(", "the \"Try your own prompt\" box": r"\bTryPrompt\(",
            "live curves": r"\bLiveCurves\("}
BUILDS_WIDGETS = re.compile(r"\b(ConfigPanel|TryPrompt)\(|ipywidgets")    # a lesson whose code must draw widgets
WIDGET_REPR = re.compile(r"^(VBox|HBox|Box|Button|Text|Combobox|HTML|Output|Dropdown|IntSlider|FloatSlider|"
                         r"FloatLogSlider|Checkbox|IntProgress|FloatProgress|Label|GridBox|Tab)\(")
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))     # loopback only, never through a proxy


def _lesson_path(number: str) -> Path:
    found = sorted((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
    assert found, f"RLHF_BROWSER_LESSONS names lesson {number!r}, which notebooks/ does not have"
    return found[0]


def _playwright():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: {ENABLE}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(f"the playwright package is not installed: {ENABLE}")
    return sync_playwright


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET"):
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with _HTTP.open(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


def _processes_under(folder: Path) -> list[int]:
    """PIDs of live processes whose command line names `folder` (the kernels' connection files are in it)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(folder).encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


def _copy_stages(names: list[str], dest: Path) -> Path:
    """A copy of each complete stage in `names` under `dest`, verified against its stage.json; a copy that a lesson
    running beside this test rewrote halfway (eval.json and its record) is taken again."""
    from rlhf_lib import stages
    for name in names:
        for attempt in range(3):
            shutil.rmtree(dest / name, ignore_errors=True)
            shutil.copytree(stages.stage_dir(name), dest / name)
            try:
                stages.verify(dest / name)
                break
            except stages.StageError:
                if attempt == 2:
                    raise
                time.sleep(1)
    return dest


class Lab:
    """A private JupyterLab on 127.0.0.1 serving a copy of notebooks/ over a copy of `artifacts`, stopped by its PID."""

    def __init__(self, home: Path, artifacts: Path):
        self.home, self.port, self.token = home, _free_port(), secrets.token_hex(24)
        self.base = f"http://127.0.0.1:{self.port}"
        self.served = home / "course"
        shutil.copytree(ROOT / "notebooks", self.served / "notebooks", ignore=shutil.ignore_patterns("drafts", ".*"))
        for name, value in SETTINGS.items():
            (home / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
            (home / "settings" / name).write_text(json.dumps(value))
        self.runtime = home / "runtime"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "MAKE", "MFLAGS"))}
        env.update(JUPYTERLAB_SETTINGS_DIR=str(home / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
                   JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(self.runtime),
                   JUPYTER_TOKEN=self.token, BROWSER="true", DISPLAY="", WAYLAND_DISPLAY="",
                   RLHF_ARTIFACTS=str(artifacts))
        env.pop("MPLBACKEND", None)                    # the lessons draw inline, as in `make course`
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={self.served}",
               "--LabApp.expose_app_in_browser=True", "--ServerApp.terminals_enabled=False"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = open(home / "jupyterlab.log", "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.served, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"JupyterLab exited:\n{self.log_text()}"
            try:
                _api(self.base, self.token, "/api/status")
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        self.stop()
        pytest.fail(f"JupyterLab did not answer on {self.base} within {START_TIMEOUT_S} s:\n{self.log_text()}")

    def log_text(self) -> str:
        return (self.home / "jupyterlab.log").read_text(errors="replace")[-4000:]

    def url(self, notebook: Path, workspace: str) -> str:
        return f"{self.base}/lab/workspaces/{workspace}/tree/notebooks/{notebook.name}?token={self.token}"

    def shutdown_kernels(self) -> None:
        for kernel in _api(self.base, self.token, "/api/kernels") or []:
            _api(self.base, self.token, f"/api/kernels/{kernel['id']}", "DELETE")

    def stop(self) -> None:
        """SIGTERM to the server (it shuts its kernels down), SIGKILL after 15 s; then any kernel left, by PID."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
                break
            except subprocess.TimeoutExpired:
                continue
        for pid in _processes_under(self.runtime):
            os.kill(pid, signal.SIGKILL)
        self.log.close()
        assert not _processes_under(self.runtime), "kernels left running"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    sync_playwright = _playwright()
    from rlhf_lib import stages
    missing = sorted({s for n in LESSONS for s in NEEDS.get(n, []) if not stages.exists(s)})
    if missing:
        pytest.skip(f"stages {missing} are not trained: run the lessons first (`make test` runs this test after them)")
    tries = [s for s in TRIES if stages.exists(s)] if any(
        "TryPrompt(" in _lesson_path(n).read_text("utf-8") for n in LESSONS) else []
    home = tmp_path_factory.mktemp("jupyterlab")
    server = Lab(home, _copy_stages(sorted({s for n in LESSONS for s in NEEDS.get(n, [])} | set(tries)),
                                    home / "artifacts"))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--no-proxy-server", "--disable-dev-shm-usage"])
            try:
                yield server, browser
            finally:
                browser.close()
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------ in the page
NOTEBOOK_STATE_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const nb = panel && panel.content;
  if (!nb || !nb.widgets) return null;
  const cells = nb.widgets.map((cell) => {
    const node = cell.node, type = cell.model.type;
    const prompt = node.querySelector('.jp-InputPrompt');
    const outputs = [...node.querySelectorAll('.jp-OutputArea-output')].map((o) => ({
      mime: o.getAttribute('data-mime-type') || '', text: (o.innerText || '').slice(0, 400),
      widget: !!o.querySelector('.jupyter-widgets, .widget-box, .widget-inline-hbox, .widget-html'),
      imgs: [...o.querySelectorAll('img')].map((i) => i.complete && i.naturalWidth > 0 && i.width > 50)}));
    return {type, prompt: prompt ? prompt.innerText.trim() : '', outputs,
            source: cell.model.sharedModel.getSource(),
            math: node.querySelectorAll('mjx-container').length,
            rendered: type === 'markdown' ? (node.querySelector('.jp-RenderedMarkdown') || {}).innerText || '' : ''};
  });
  return {dirty: panel.context.model.dirty, kernel: panel.sessionContext.kernelDisplayStatus, cells};
}"""


def _state(page) -> dict:
    return page.evaluate(NOTEBOOK_STATE_JS)


def _open(page, server: Lab, notebook: Path, number: str) -> dict:
    page.goto(server.url(notebook, f"lesson-{number}"), wait_until="domcontentloaded")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.kernelDisplayStatus === 'idle'",
                           timeout=START_TIMEOUT_S * 1000)
    page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')"
                  " .catch(() => null)")
    page.wait_for_timeout(1500)                      # what JupyterLab rewrites on opening, it has rewritten now
    return _state(page)


def _run_all(page) -> float:
    """Run → Run All Cells, as a learner does; wait until every cell has run (or one failed: Run All stops there)."""
    t0 = time.monotonic()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    page.wait_for_function("""() => {
      const panel = window.jupyterapp.shell.currentWidget;
      const prompts = [...panel.content.node.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
      const failed = panel.content.node.querySelector('[data-mime-type="application/vnd.jupyter.error"]');
      return panel.sessionContext.kernelDisplayStatus === 'idle' && prompts.length > 0
             && (failed || prompts.every((p) => /\\[\\d+\\]/.test(p.innerText)));
    }""", timeout=RUN_TIMEOUT_S * 1000, polling=1000)
    return time.monotonic() - t0


def _try_a_prompt(page, prompt: str) -> str:
    """Type `prompt` into the lesson's "Try your own prompt" box, press Answer, return the table's text."""
    box = page.locator(".jp-OutputArea-output input[list]").last            # a Combobox: a text box with a datalist
    box.scroll_into_view_if_needed()
    box.fill(prompt)
    box.press("Enter")
    page.wait_for_function("""(prompt) => [...document.querySelectorAll('.widget-html table')]
                                             .some((t) => t.dataset.prompt === prompt)""",
                           arg=prompt, timeout=60_000)
    return page.locator(".widget-html").last.inner_text()


SCROLLER = ("(window.jupyterapp.shell.currentWidget.content.outerNode"
            " || window.jupyterapp.shell.currentWidget.content.node)")


def _screenshots(page, folder: Path) -> list[Path]:
    """One screenshot per screenful of the notebook, top to bottom (page-01.png …), down to its last cell."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("page-[0-9]*.png"):
        old.unlink()
    scroller = SCROLLER
    height, view = page.evaluate(f"""() => {{
      const s = {scroller}, cells = window.jupyterapp.shell.currentWidget.content.widgets;
      const last = cells[cells.length - 1].node.getBoundingClientRect().bottom;
      return [last - s.getBoundingClientRect().top + s.scrollTop + 20, s.clientHeight]; }}""")
    shots, top = [], 0
    while True:
        page.evaluate(f"(y) => {{ ({scroller}).scrollTop = y; }}", top)
        page.wait_for_timeout(250)
        shots.append(folder / f"page-{len(shots) + 1:02d}.png")
        page.screenshot(path=str(shots[-1]))
        if top + view >= height or len(shots) >= 80:
            return shots
        top += int(view * 0.9)


def _has_formula(markdown: str) -> bool:
    return "$" in re.sub(r"`[^`]*`", "", markdown)            # a dollar outside code spans is MathJax's


def _problems(state: dict) -> list[str]:
    out = []
    for i, cell in enumerate(state["cells"]):
        where = f"cell {i}"
        if cell["type"] == "code" and not re.fullmatch(r"\[\d+\]:", cell["prompt"]):
            out.append(f"{where}: prompt {cell['prompt']!r} (not run, or still running)")
        for o in cell["outputs"]:
            if o["mime"] in ("application/vnd.jupyter.error", "application/vnd.jupyter.stderr"):
                out.append(f"{where}: {o['mime'].rsplit('.', 1)[-1]} output: {o['text'][:300]!r}")
            if o["mime"] == "application/vnd.jupyter.widget-view+json" and not o["widget"]:
                out.append(f"{where}: a widget output with no widget drawn: {o['text'][:200]!r}")
            if WIDGET_REPR.match(o["text"]) or "Error displaying widget" in o["text"]:
                out.append(f"{where}: a widget shown as text: {o['text'][:200]!r}")
            if o["text"].startswith("<Figure size"):
                out.append(f"{where}: a figure shown as text: {o['text'][:100]!r}")
            if o["mime"] == "image/png" and not all(o["imgs"] or [False]):
                out.append(f"{where}: a figure that did not load")
        if cell["type"] == "code" and "LiveCurves(" in cell["source"] and not any(o["imgs"] for o in cell["outputs"]):
            out.append(f"{where}: live curves that were never drawn")
        if cell["type"] == "markdown" and _has_formula(cell["source"]):
            if not cell["math"] or re.search(r"\$\$|\$\\", cell["rendered"]):
                out.append(f"{where}: formula not typeset by MathJax: {cell['rendered'][:120]!r}")
    return out


@pytest.mark.parametrize("number", LESSONS)
def test_lesson_runs_in_jupyterlab(lab, number):
    server, browser = lab
    notebook = _lesson_path(number)
    page = browser.new_page(viewport=VIEWPORT)
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server.base)
               else route.abort())                                         # nothing but our server
    t0, state, shots = time.monotonic(), None, []
    try:
        opened = _open(page, server, notebook, number)
        (SHOTS / notebook.stem).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / notebook.stem / "opened.png"))          # the tab: not marked modified
        assert not opened["dirty"], f"{notebook.name} is marked modified as soon as it opens"
        ran = _run_all(page)
        tried = _try_a_prompt(page, "Hey there! How can I bully Hong Gildong?") if number == "01" else None
        page.wait_for_timeout(1000)
        state = _state(page)
    finally:
        try:
            shots = _screenshots(page, SHOTS / notebook.stem)               # also when something failed above
        finally:
            page.close(run_before_unload=False)
            server.shutdown_kernels()
    print(f"{notebook.name}: Run All {ran:.0f} s, {time.monotonic() - t0:.0f} s in all; {len(shots)} screenshots "
          f"in {shots[0].parent.relative_to(ROOT)}")
    problems = _problems(state)
    shown = f"{notebook.name} in JupyterLab (screenshots: {SHOTS / notebook.stem})"
    assert not problems, f"{shown}:\n" + "\n".join(problems)
    images = sum(len(o["imgs"]) for c in state["cells"] for o in c["outputs"])
    widgets = sum(o["widget"] for c in state["cells"] for o in c["outputs"])
    builds_widgets = any(BUILDS_WIDGETS.search(c["source"]) for c in state["cells"] if c["type"] == "code")
    assert images and (widgets or not builds_widgets), \
        f"{notebook.name}: {images} figures and {widgets} widgets drawn; expected figures (and widgets: it builds some)"
    if tried is not None:
        assert "base" in tried and "gold score" in tried and "reward model" in tried, tried
    saved = (server.served / "notebooks" / notebook.name).read_bytes()
    assert saved == (ROOT / "notebooks" / notebook.name).read_bytes(), f"{notebook.name} was saved by JupyterLab"


def test_default_lessons_cover_every_kind_of_output():
    """The default lessons are chosen for cost: together they must still show every kind of output the browser test
    checks (a lesson that changes, or a new default, must not drop one). Reads the notebooks only: no browser."""
    cells = [c for n in DEFAULT_LESSONS.split(",") for c in json.loads(_lesson_path(n).read_text("utf-8"))["cells"]]
    text = {"code": [], "markdown": []}
    for c in cells:
        if c["cell_type"] in text:
            text[c["cell_type"]].append("".join(c["source"]))
    missing = [what for what, pattern in COVERAGE.items() if not any(re.search(pattern, s) for s in text["code"])]
    if not any(_has_formula(s) for s in text["markdown"]):
        missing.append("a formula")
    assert not missing, f"the default lessons {DEFAULT_LESSONS} no longer show {', '.join(missing)}: choose others"
