"""The MLflow UI on the store a sweep writes, in headless Chromium (issue 18).

A 2-job smoke sweep writes a fresh SQLite store; `mlflow server` serves it; Chromium, driven by
Selenium, opens the sweep's experiment as a link to it does, and finds what a user should see:
the runs table (not the GenAI overview), the sweep's parent run with its two jobs as children,
and a dataset input on each child.

Which view the experiment page opens on. MLflow 3.17's UI chooses it from the browser's
workflow type, the "GenAI | Model training" switch at the top of its sidebar: remembered in the
browser's localStorage, overridden by `?workflowType=` in the URL, GenAI in a fresh browser. Its
bundled UI does not read the experiment's `mlflow.experimentKind` tag for this (it reads the tag
only when that switch is disabled), so a fresh browser opens every experiment, tagged or not, on
the GenAI overview. A link to an experiment therefore carries the workflow type its kind means,
as the link the harness prints does (harness.tracking.experiment_page); one without the kind gets
no parameter and opens as a fresh browser does, on the GenAI overview, which these tests tell
from the runs table.

Needs Chromium and its driver (Debian: `apt-get install chromium chromium-driver`, as .ci/run
does) and Selenium (the dev extra); skipped with the reason when one is missing. The page's
elements are found by role, test id, AG Grid's row ids (the run ids) and visible text, never by
generated CSS class names. Each test saves a screenshot under its tmp_path and prints the path.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest

from harness.tracking import EXPERIMENT_KIND_TAG as KIND_TAG
from tests.browser import CHROMEDRIVER, CHROMIUM, missing
from harness.tracking import MODEL_TRAINING, experiment_page

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a sweep, a server and a browser: ~2 min

# What a fresh sweep writes (see harness/tracking.py): the contract this test checks in the UI.
SWEEP_PARENT_TAG = "prefharness.sweep_parent"  # the jobs' runs name it in mlflow.parentRunId
CONTEXT_TAG = "mlflow.data.context"

SWEEP_TIMEOUT = 400  # s: two smoke jobs, ~45 s on an idle 2-core machine
SERVER_TIMEOUT = 180  # s until /health answers: ~25 s on a busy 2-core machine
PAGE_TIMEOUT = 90  # s for the UI to render what is looked for

RUN_NAME_CELL = '[role="gridcell"][col-id="attributes.`Run Name`"]'
DATASET_CELL = '[role="gridcell"][col-id="attributes.`Dataset`"]'
RUN_NAME_HEADER = '[role="columnheader"] [data-testid="sort-header-Run Name"]'
DATASET_BUTTON = '[data-testid="open-dataset-drawer"]'


if missing is not None:
    pytestmark.append(pytest.mark.skip(reason=missing))
else:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait


@dataclass
class SweepStore:
    db: Path
    experiment: Any  # mlflow.entities.Experiment
    parent: Any  # the run tagged as the sweep's parent (mlflow.entities.Run), or None
    jobs: list[Any]  # every other run of the experiment: the sweep's jobs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def experiment_link(base: str, experiment: Any) -> str:
    """The experiment's page as a link to it opens it: with the workflow type its kind tag means,
    none without one (the browser's own then: GenAI in a fresh one)."""
    if experiment.tags.get(KIND_TAG) == MODEL_TRAINING:
        return experiment_page(experiment.experiment_id, base)  # the link the harness prints
    return f"{base}/#/experiments/{experiment.experiment_id}"


@pytest.fixture(scope="module")
def sweep(harness_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> SweepStore:
    """A 2-job smoke sweep (one job after the other) into a store of its own; the session's cache."""
    tmp = tmp_path_factory.mktemp("ui-sweep")
    db = tmp / "mlflow.db"
    env = harness_env | {"MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    cmd = [sys.executable, "-m", "harness", "-m", "experiment=smoke", "loss.beta=0.1,0.2", "hydra/launcher=basic",
           f"hydra.sweep.dir={tmp / 'multirun'}"]
    proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=SWEEP_TIMEOUT)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiments = [e for e in client.search_experiments() if e.name != "Default"]
    assert len(experiments) == 1, [e.name for e in experiments]
    (experiment,) = experiments
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get(SWEEP_PARENT_TAG) == "1"]
    assert len(parents) <= 1, [r.info.run_name for r in parents]
    jobs = [r for r in runs if r not in parents]
    assert len(jobs) == 2 and all(r.info.status == "FINISHED" for r in jobs), [(r.info.run_name, r.info.status)
                                                                               for r in jobs]
    return SweepStore(db, experiment, parents[0] if parents else None, jobs)


@pytest.fixture(scope="module")
def server(sweep: SweepStore, harness_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on the sweep's store, on a free local port; stopped with all its processes
    when the module's tests are done. Yields its base URL."""
    tmp = tmp_path_factory.mktemp("ui-server")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp / "server.log"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{sweep.db}",
           "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]
    # Without MLflow's background job runner (GenAI judges, trace upkeep: half a dozen processes
    # of ~240 MB the UI does not need here).
    env = harness_env | {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # its own process group: stopped whole below
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                state = f"exited {proc.returncode}" if proc.poll() is not None else f"no /health in {SERVER_TIMEOUT} s"
                pytest.fail(f"mlflow server {state}:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield base
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's process group (its own, from start_new_session): SIGTERM, then SIGKILL to
    whatever of it is left after 5 s (it can take 20 s and more to stop)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile (no remembered workflow type), wide enough for the
    runs table's Dataset column."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1920,1080", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    # The driver's path is given, so Selenium Manager (which would download one) is not used.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    close_assistant(driver)
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def wait(driver: WebDriver, what: str, condition: Callable[[WebDriver], Any], timeout: float = PAGE_TIMEOUT) -> Any:
    """WebDriverWait until `condition` is truthy; a timeout fails the test saying what was awaited
    and where the page was."""
    try:
        return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text
        pytest.fail(f"after {timeout} s, still no {what}; page {driver.current_url}:\n{body[:1500]}")


def landing_view(driver: WebDriver) -> str | None:
    """Where the experiment page settled: 'runs' once the runs table's grid shows its Run Name
    column, 'genai' once the UI redirected to the GenAI overview or traces; None meanwhile."""
    if driver.find_elements(By.CSS_SELECTOR, f'[role="grid"] {RUN_NAME_HEADER}'):
        return "runs"
    fragment = driver.current_url.partition("#")[2]
    if "/overview" in fragment or "/traces" in fragment or driver.find_elements(By.XPATH, '//h2[.="Overview"]'):
        return "genai"
    return None


def open_runs_table(driver: WebDriver, base: str, experiment: Any) -> None:
    """Open the experiment's link and wait for the page to settle; fail unless on the runs table."""
    link = experiment_link(base, experiment)
    driver.get(link)
    view = wait(driver, "runs table or GenAI overview", landing_view)
    assert view == "runs", (f"{link} opened the GenAI view ({driver.current_url}), not the runs table; "
                            f"the experiment's {KIND_TAG} tag: {experiment.tags.get(KIND_TAG)!r}")


def shown_rows(driver: WebDriver) -> dict[str, str]:
    """The runs table's rows: run id → the run name its Run Name cell links to the run's page
    (AG Grid's row-id is the run id; a row is split into a pinned and a scrolling part)."""
    links = driver.find_elements(By.CSS_SELECTOR, f'[role="row"][row-id] {RUN_NAME_CELL} a[href*="/runs/"]')
    return {link.find_element(By.XPATH, './ancestor::*[@role="row"][1]').get_attribute("row-id"): link.text.strip()
            for link in links}


def close_assistant(driver: WebDriver) -> None:
    """The assistant panel takes a quarter of the width: closed for screenshots, if shown."""
    for button in driver.find_elements(By.CSS_SELECTOR, '[data-component-id="mlflow.assistant.chat_panel.close"]'):
        try:
            button.click()
        except WebDriverException:
            pass


def test_experiment_opens_on_the_runs_table(sweep: SweepStore, server: str, browser: WebDriver,
                                            tmp_path: Path) -> None:
    try:
        open_runs_table(browser, server, sweep.experiment)
        assert "/runs" in browser.current_url.partition("#")[2]
        assert browser.find_elements(By.XPATH, '//h2[normalize-space()="Runs"]'), "no 'Runs' page heading"
        assert not browser.find_elements(By.XPATH, '//h2[normalize-space()="Overview"]')
        description = sweep.experiment.tags.get("mlflow.note.content", "")
        if description:  # shown above the table (its first words suffice)
            wait(browser, "experiment description",
                 lambda d: description[:40] in d.find_element(By.TAG_NAME, "main").text)
    finally:
        screenshot(browser, tmp_path, "runs-table")
    assert sweep.experiment.tags.get(KIND_TAG) == MODEL_TRAINING, sweep.experiment.tags


def test_parent_run_expands_to_its_two_jobs(sweep: SweepStore, server: str, browser: WebDriver,
                                            tmp_path: Path) -> None:
    parent = sweep.parent
    assert parent is not None, f"no run tagged {SWEEP_PARENT_TAG}=1 among {[r.info.run_name for r in sweep.jobs]}"
    try:
        open_runs_table(browser, server, sweep.experiment)
        rows = wait(browser, f"row of the parent run {parent.info.run_name!r}",
                    lambda d: (rows := shown_rows(d)) and parent.info.run_id in rows and rows)
        assert rows[parent.info.run_id] == parent.info.run_name and parent.info.run_name.startswith("sweep-"), rows
        jobs = {r.info.run_id: r.info.run_name for r in sweep.jobs}
        # Nested: collapsed, the table shows the parent and none of its jobs.
        assert set(rows) == {parent.info.run_id}, f"rows shown before expanding the parent: {rows}"

        cell = browser.find_element(By.CSS_SELECTOR, f'[role="row"][row-id="{parent.info.run_id}"] {RUN_NAME_CELL}')
        (expander,) = cell.find_elements(By.TAG_NAME, "button")  # the +/- beside a parent's name
        expander.click()
        rows = wait(browser, "the parent's children after expanding it",
                    lambda d: (rows := shown_rows(d)) and len(rows) > 1 and rows)
        children = {run_id: name for run_id, name in rows.items() if run_id != parent.info.run_id}
        assert children == jobs, f"children shown {children}, the sweep's job runs {jobs}"
        assert len(children) == 2
    finally:
        screenshot(browser, tmp_path, "parent-and-children")


def test_each_child_shows_a_dataset_input(sweep: SweepStore, server: str, browser: WebDriver, tmp_path: Path) -> None:
    try:
        open_runs_table(browser, server, sweep.experiment)
        rows = wait(browser, "runs table rows", shown_rows)
        jobs = {r.info.run_id for r in sweep.jobs}
        if sweep.parent is not None and not jobs <= set(rows):  # nested under it: expand it (its only button)
            parent_row = f'[role="row"][row-id="{sweep.parent.info.run_id}"]'
            browser.find_element(By.CSS_SELECTOR, f"{parent_row} {RUN_NAME_CELL} button").click()
        for job in sweep.jobs:
            inputs = {f"{i.dataset.name} ({i.dataset.digest})": {t.key: t.value for t in i.tags}.get(CONTEXT_TAG)
                      for i in job.inputs.dataset_inputs}
            assert inputs, f"run {job.info.run_name!r} has no dataset inputs in the store"
            cell = f'[role="row"][row-id="{job.info.run_id}"] {DATASET_CELL}'
            buttons = wait(browser, f"a dataset in the Dataset column of {job.info.run_name!r}",
                           lambda d, cell=cell: d.find_elements(By.CSS_SELECTOR, f"{cell} {DATASET_BUTTON}"))
            shown = buttons[0].text.strip()
            assert shown in inputs, f"{job.info.run_name!r} shows dataset {shown!r}, its inputs are {sorted(inputs)}"
            context = inputs[shown]
            if context:  # the dataset's context (training / evaluation) is shown beside it
                text = browser.find_element(By.CSS_SELECTOR, cell).text
                assert context.lower() in text.lower(), f"{job.info.run_name!r}: {text!r} lacks context {context!r}"
    finally:
        screenshot(browser, tmp_path, "datasets")
    # The inputs carry a profile with their row count (the UI's dataset drawer shows it).
    for job in sweep.jobs:
        for i in job.inputs.dataset_inputs:
            assert json.loads(i.dataset.profile or "{}").get("num_rows", 0) > 0, (job.info.run_name, i.dataset.name)
