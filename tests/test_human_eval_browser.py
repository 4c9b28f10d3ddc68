"""A real headless Chromium walks one full interactive task against the real server on tiny models; the server is
killed mid-way through the next task and restarted: nothing submitted is lost, the annotator resumes, and
analyze.py counts the judgments. Skipped, with the reason, where Chromium, chromedriver or selenium is missing
(RUN/install_browser.sh installs them from the system's packages)."""
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from helpers.human_eval import FAST_DECODING, make_study_inputs, system_args

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CRITERIA = ("Fluency", "Identification", "Comforting", "Suggestion", "Overall", "Personalisation")


@pytest.fixture
def browser(tmp_path):
    pytest.importorskip("flask", reason="the human-evaluation app needs flask (requirements.txt)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements.txt)")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.skip(f"{path} is missing: bash RUN/install_browser.sh installs chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1100,1000",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(argv, log_path):
    """The server as a user starts it; returns (process, {annotator: link}) once it printed "ready"."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(log_path, "w")
    process = subprocess.Popen([sys.executable, "-m", "human_eval", *argv], cwd=REPO, env=env, stdout=log,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        text = open(log_path).read()
        if "ready: " in text:
            links = dict(line.strip().split(": ", 1) for line in text.splitlines() if "/a/" in line)
            return process, links
        if process.poll() is not None:
            pytest.fail(f"the server exited: {text}")
        time.sleep(0.3)
    process.kill()
    pytest.fail("the server did not get ready in time")


def send(driver, side, text):
    from selenium.webdriver.common.by import By
    before = len(driver.find_elements(By.CSS_SELECTOR, f"#chat-{side} li.supporter"))
    box = driver.find_element(By.CSS_SELECTOR, f"#form-{side} input[name=text]")
    box.send_keys(text)
    box.submit()
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, f"#chat-{side} li.supporter")) == before + 1)


def wait_for(condition, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if condition():
                return
        except Exception:  # the page is being replaced
            pass
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the page")


def test_browser_walks_a_task_and_survives_a_server_kill(browser, tmp_path, tiny_blender_dir):
    from selenium.webdriver.common.by import By
    inputs = make_study_inputs(tmp_path, tiny_blender_dir)
    db = tmp_path / "study.db"
    argv = ["--db", str(db), "--test_file", inputs["test_file"], "--annotators", "ann1,ann2", "--port",
            str(free_port()), "--pretrained_model_path", tiny_blender_dir, "--device", "cpu",
            "--min_seconds_between_messages", "0", *FAST_DECODING, *system_args(inputs)]
    server, links = start_server(argv, tmp_path / "server1.log")
    try:
        browser.get(links["ann1"])
        browser.find_element(By.ID, "start").click()
        wait_for(lambda: browser.find_element(By.ID, "card"))
        assert "job crisis" in browser.find_element(By.ID, "card").text
        first_task = browser.current_url
        for side in "AB":
            for turn in range(3):
                send(browser, side, f"turn {turn} for {side}: i feel <b>lost</b>")
        assert "<b>lost</b>" in browser.find_element(By.ID, "chat-A").text  # shown as text, not markup
        shot = os.environ.get("HUMAN_EVAL_SCREENSHOT")  # README picture: HUMAN_EVAL_SCREENSHOT=docs/x.png pytest ...
        if shot:
            browser.execute_script("window.scrollTo(0, 0)")
            browser.save_screenshot(shot)
        for criterion, choice in zip(CRITERIA, ("A", "B", "tie", "A", "A", "B")):
            browser.find_element(By.CSS_SELECTOR, f"input[name='{criterion}'][value='{choice}']").click()
        browser.find_element(By.ID, "submit-judgment").click()
        wait_for(lambda: browser.current_url != first_task and browser.find_element(By.ID, "card"))
        send(browser, "A", "the next task has started")
        second_task = browser.current_url
    finally:
        server.send_signal(signal.SIGKILL)  # a crash mid-task
        server.wait()
    server, _ = start_server(argv, tmp_path / "server2.log")
    try:
        browser.get(links["ann1"])
        browser.find_element(By.ID, "start").click()
        wait_for(lambda: browser.find_element(By.ID, "card"))
        assert browser.current_url.split("#")[0] == second_task.split("#")[0]  # resumed where they were
        assert "the next task has started" in browser.find_element(By.ID, "chat-A").text
    finally:
        server.terminate()
        server.wait()
    con = sqlite3.connect(db)
    system_a, system_b = con.execute("SELECT system_a, system_b FROM tasks WHERE id = 1").fetchone()
    judged = dict(con.execute("SELECT criterion, winner FROM judgments WHERE task_id = 1").fetchall())
    assert judged == dict(zip(CRITERIA, (system_a, system_b, "tie", system_a, system_a, system_b)))
    assert con.execute("SELECT COUNT(*) FROM messages WHERE task_id = 1").fetchone()[0] == 12
    out = subprocess.run([sys.executable, "-m", "human_eval.analyze", str(db)], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    rows = {r["criterion"]: r for r in json.loads((tmp_path / "human_eval.json").read_text())}
    assert sum(r["n"] for r in rows.values()) == 6
    x = rows["Overall"]["system_x"]  # "joint" (pairs are ordered by name)
    for criterion, winner in judged.items():
        r = rows[criterion]
        assert (r["wins"], r["ties"], r["losses"]) == ((1, 0, 0) if winner == x else (0, 1, 0) if winner == "tie"
                                                       else (0, 0, 1))
