"""The labelling page in a real browser: `harness-label serve` started as a user starts it,
headless Chromium (Selenium) labelling several comparisons, a reload, a second annotator in a
second browser at the same time, the server killed (SIGKILL) and every acknowledged answer found
on disk, read back by labeler=file.

Needs Chromium and its driver (Debian: `apt-get install chromium chromium-driver`, as .ci/run
does) and Selenium (the dev extra); skipped with the reason when one is missing."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.labelers.file import read_comparisons
from tests.browser import CHROMEDRIVER, CHROMIUM, missing

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
if missing is not None:
    pytestmark.append(pytest.mark.skip(reason=missing))
else:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait


ITEMS = [{"id": f"q{i}", "prompt": f"Prompt {i}: the film was",
          "responses": [f" great ({i}).", f" <b>dull</b> ({i})."]} for i in range(6)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli.label", "serve", str(tmp_path / "queue.jsonl"),
                             str(tmp_path / "labels.jsonl"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited: {proc.stdout.read()}")
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("the labelling page did not answer within 60 s")


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[list]:
    drivers = []
    for i in range(2):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    f"--user-data-dir={tmp_path / f'profile-{i}'}"):
            options.add_argument(arg)
        drivers.append(webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options))
    try:
        yield drivers
    finally:
        for driver in drivers:
            driver.quit()


def _progress(driver) -> str:  # noqa: ANN001 - a WebDriver
    return driver.find_element(By.ID, "progress").text


def _press(driver, button: str) -> None:  # noqa: ANN001 - a WebDriver
    """Click a submit button and wait for the page it leads to (POST, redirect, GET): a click
    returns before the navigation it starts, so reading the page at once can read the old one
    or a node that is being replaced."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, button).click()
    WebDriverWait(driver, 60).until(expected_conditions.staleness_of(old))
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")


def test_people_label_in_a_browser_and_no_answer_is_lost(tmp_path: Path, browsers: list) -> None:
    (tmp_path / "queue.jsonl").write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    port = _free_port()
    server = _serve(tmp_path, port)
    ann, bob = browsers
    try:
        ann.get(f"http://127.0.0.1:{port}/?annotator=ann")
        bob.get(f"http://127.0.0.1:{port}/?annotator=bob")
        assert _progress(ann) == "ann: 0 of 6 labelled" and _progress(bob) == "bob: 0 of 6 labelled"
        # The markup in a response is shown as text, not rendered.
        assert any("<b>dull</b>" in e.text for e in ann.find_elements(By.CLASS_NAME, "response"))
        # Ann and Bob answer in turns, each in their own browser, the same items at the same time.
        for step in range(3):
            _press(ann, "choose-0")
            _press(bob, "tie" if step == 1 else "choose-1")
        assert _progress(ann) == "ann: 3 of 6 labelled"
        ann.refresh()  # a reload shows the next item, and does not answer anything
        assert _progress(ann) == "ann: 3 of 6 labelled"
        _press(ann, "skip")
        assert _progress(ann) == "ann: 4 of 6 labelled" and _progress(bob) == "bob: 3 of 6 labelled"
    finally:
        server.send_signal(signal.SIGKILL)  # no shutdown hook gets to run
        server.wait(timeout=30)
    lines = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert sorted((x["annotator"], x["item"], x["outcome"]) for x in lines) == sorted(
        [("ann", f"q{i}", "choice") for i in range(3)] + [("ann", "q3", "skip")]
        + [("bob", "q0", "choice"), ("bob", "q1", "tie"), ("bob", "q2", "choice")])
    for line in lines:
        if line["outcome"] == "choice":  # the response chosen is the one shown where it was clicked
            assert line["choice"] == line["shown"][line["position"]]
            assert line["position"] == (0 if line["annotator"] == "ann" else 1)
        assert line["seconds"] is not None
    records = read_comparisons(tmp_path / "labels.jsonl")  # ties and skips passed over
    assert sorted(r.id for r in records) == ["q0/ann", "q0/bob", "q1/ann", "q2/ann", "q2/bob"]


def test_a_thumbs_up_or_down_in_a_browser(tmp_path: Path, browsers: list) -> None:
    """Binary labels (labels.kind=binary): one response shown, rated with a thumbs up or down."""
    items = [{"id": f"r{i}", "kind": "rating", "prompt": f"Prompt {i}", "responses": [f" <i>fine</i> ({i})."]}
             for i in range(2)]
    (tmp_path / "queue.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    port = _free_port()
    server = _serve(tmp_path, port)
    ann = browsers[0]
    try:
        ann.get(f"http://127.0.0.1:{port}/?annotator=ann")
        assert ann.find_element(By.TAG_NAME, "h3").text == "Is this response good?"
        assert "<i>fine</i> (0)." in ann.find_element(By.ID, "response-0").text
        _press(ann, "up")
        _press(ann, "down")
        assert _progress(ann) == "ann: 2 of 2 labelled" and ann.find_elements(By.ID, "finished")
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    lines = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert [(x["item"], x["outcome"], x["rating"]) for x in lines] == [("r0", "rating", 1), ("r1", "rating", 0)]
