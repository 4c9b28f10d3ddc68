"""A real headless Chromium against the real server (waitress on 127.0.0.1) on tiny models.

- One full interactive task; the server is killed mid-way through the next task and restarted: nothing submitted is
  lost, the annotator resumes, analyze.py counts the judgments; the server's log of it all holds no access token.
- The whole task at 390x844 (a phone) and 1280x800: no horizontal scrolling on any page, every control inside the
  screen and clicked, the newest message in view, typed text kept after a refused send.
- A form on another origin (a second server on another port) records nothing; a framed page does not render.
- Chat mode: the annotator picks each of two systems in turn and talks to it.
Skipped, with the reason, where Chromium, chromedriver or selenium is missing (RUN/install_browser.sh); failed
instead, with the same reason, under PAL_REQUIRE_BROWSER=1 (CI: .ci/run). PAL_CHROMIUM and PAL_CHROMEDRIVER name
other binaries than the ones on PATH.
"""
import http.server
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from helpers.human_eval import FAST_DECODING, make_study_inputs, system_args

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("PAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("PAL_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
CRITERIA = ("Fluency", "Identification", "Comforting", "Suggestion", "Overall", "Personalisation")


def unavailable(reason):
    """Skip with the reason; under PAL_REQUIRE_BROWSER=1 (CI) fail with it: CI never goes green without them."""
    if os.environ.get("PAL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (PAL_REQUIRE_BROWSER=1: the browser tests must run)", pytrace=False)
    pytest.skip(reason)


def required_module(name, reason):
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        unavailable(reason)


@pytest.fixture
def browser(tmp_path):
    required_module("flask", "the human-evaluation app needs flask (requirements.txt)")
    webdriver = required_module("selenium.webdriver", "selenium is not installed (requirements.txt)")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            unavailable(f"{path} is missing: bash RUN/install_browser.sh installs chromium and chromium-driver")
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
    """The server as a user starts it; returns (process, {annotator: link}) once it printed "ready".

    Its output (the links) goes to log_path, its log (access log, errors) to log_path + ".err"."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "human_eval", *argv], cwd=REPO, env=env,
                               stdout=open(log_path, "w"), stderr=open(f"{log_path}.err", "w"), text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        text = open(log_path).read()
        if "ready: " in text:
            links = dict(line.strip().split(": ", 1) for line in text.splitlines() if "/a/" in line)
            return process, links
        if process.poll() is not None:
            pytest.fail(f"the server exited: {text}{open(f'{log_path}.err').read()}")
        time.sleep(0.3)
    process.kill()
    pytest.fail("the server did not get ready in time")


def token_of(link):
    return link.rstrip("/").rsplit("/", 1)[1]


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
        assert browser.current_url.endswith("/home")  # the token left the address bar
        browser.find_element(By.ID, "start").click()
        wait_for(lambda: browser.find_element(By.ID, "card"))
        assert "job crisis" in browser.find_element(By.ID, "card").text
        first_task = browser.current_url
        for side in "AB":
            for turn in range(3):
                send(browser, side, f"turn {turn} for {side}: i feel <b>lost</b>")
        assert "<b>lost</b>" in browser.find_element(By.ID, "chat-A").text  # shown as text, not markup
        for criterion, choice in zip(CRITERIA, ("A", "B", "tie", "A", "A", "B")):
            browser.find_element(By.CSS_SELECTOR, f"input[name='{criterion}'][value='{choice}']").click()
        browser.find_element(By.ID, "submit-judgment").click()
        wait_for(lambda: browser.current_url != first_task and browser.find_element(By.ID, "card"))
        send(browser, "A", "the next task has started")
        second_task = browser.current_url
    finally:
        server.send_signal(signal.SIGKILL)  # a crash mid-task
        server.wait()
    server, relinks = start_server(argv, tmp_path / "server2.log")
    assert relinks == {}  # links are printed once, when made (only their hashes are stored)
    port = argv[argv.index("--port") + 1]
    admin = subprocess.run([sys.executable, "-m", "human_eval.admin", "--db", str(db), "new-link", "ann2"], cwd=REPO,
                           capture_output=True, text=True)
    assert admin.returncode == 0 and f"ann2: http://127.0.0.1:{port}/a/" in admin.stdout, admin  # the server's port
    try:
        browser.get(links["ann1"])  # the link of before the crash
        browser.find_element(By.ID, "start").click()
        wait_for(lambda: browser.find_element(By.ID, "card"))
        assert browser.current_url.split("#")[0] == second_task.split("#")[0]  # resumed where they were
        assert "the next task has started" in browser.find_element(By.ID, "chat-A").text
    finally:
        server.terminate()
        server.wait()
    logs = "".join(open(tmp_path / f"server{i}.log.err").read() for i in (1, 2))
    assert '"POST /task/1/judge" 303' in logs and '"GET /a/<token>/" 303' in logs  # the access log is there ...
    assert not any(token_of(link) in logs for link in links.values())  # ... and names no token
    con = sqlite3.connect(db)
    system_a, system_b = con.execute("SELECT system_a, system_b FROM tasks WHERE id = 1").fetchone()
    judged = dict(con.execute("SELECT criterion, winner FROM judgments WHERE task_id = 1").fetchall())
    assert judged == dict(zip(CRITERIA, (system_a, system_b, "tie", system_a, system_a, system_b)))
    assert con.execute("SELECT COUNT(*) FROM messages WHERE task_id = 1").fetchone()[0] == 12
    out = subprocess.run([sys.executable, "-m", "human_eval.analyze", str(db)], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    rows = {r["criterion"]: r for r in json.loads((tmp_path / "study.json").read_text())}
    assert sum(r["n"] for r in rows.values()) == 6
    x = rows["Overall"]["system_x"]  # "joint" (pairs are ordered by name)
    for criterion, winner in judged.items():
        r = rows[criterion]
        assert (r["wins"], r["ties"], r["losses"]) == ((1, 0, 0) if winner == x else (0, 1, 0) if winner == "tie"
                                                       else (0, 0, 1))


# ---- layouts, forged forms, framing (one server for all) ----------------------------------------------------------
LAYOUT_MIN_TURNS = 2
VIEWPORTS = {"phone": (390, 844), "desktop": (1280, 800)}


@pytest.fixture(scope="module")
def study_server(tmp_path_factory, tiny_blender_dir):
    pytest.importorskip("flask", reason="the human-evaluation app needs flask (requirements.txt)")
    root = tmp_path_factory.mktemp("layout")
    inputs = make_study_inputs(root, tiny_blender_dir)
    port = free_port()
    argv = ["--db", str(root / "study.db"), "--test_file", inputs["test_file"], "--annotators",
            ",".join(["forged", *VIEWPORTS]), "--port", str(port), "--pretrained_model_path", tiny_blender_dir,
            "--device", "cpu", "--min_seconds_between_messages", "0", "--min_turns", str(LAYOUT_MIN_TURNS),
            *FAST_DECODING, *system_args(inputs)]
    server, links = start_server(argv, root / "server.log")
    yield {"links": links, "db": root / "study.db", "port": port, "log": root / "server.log.err"}
    server.terminate()
    server.wait()


def set_viewport(driver, width, height):
    """The page's viewport exactly width x height CSS pixels, as on a phone (mobile: the meta viewport applies)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                                  "deviceScaleFactor": 1, "mobile": width < 700})


def assert_fits(driver):
    """No horizontal scrolling, and every visible control lies within the screen's width."""
    width, scroll_width = driver.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth]")
    assert scroll_width <= width, f"{driver.current_url}: the page scrolls sideways ({scroll_width} > {width})"
    outside = driver.execute_script("""
        return Array.from(document.querySelectorAll('a, button, input, select, textarea, summary'))
          .filter(e => e.getClientRects().length && e.type !== 'hidden')
          .map(e => [e.id || e.name || e.textContent.trim(), e.getBoundingClientRect()])
          .filter(([_, r]) => r.left < 0 || r.right > window.innerWidth).map(([n, r]) => n + ':' + r.right);""")
    assert not outside, f"{driver.current_url}: controls outside the screen: {outside}"


def newest_message_in_view(driver, side):
    return driver.execute_script(f"""
        const items = document.querySelectorAll('#chat-{side} .messages li');
        const r = items[items.length - 1].getBoundingClientRect();
        return r.top >= 0 && r.bottom <= window.innerHeight;""")


def click_send(driver, side, text):
    """Type into conversation `side` and click its Send button."""
    from selenium.webdriver.common.by import By
    box = driver.find_element(By.CSS_SELECTOR, f"#form-{side} input[name=text]")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.CSS_SELECTOR, f"#form-{side} button").click()


def save_small_png(driver, path):
    """A screenshot of the viewport as a small palette PNG (for the README)."""
    from io import BytesIO

    from PIL import Image
    image = Image.open(BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    image.quantize(colors=64).save(path, optimize=True)


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_whole_task_fits_the_screen(browser, study_server, viewport):
    from selenium.webdriver.common.by import By
    set_viewport(browser, *VIEWPORTS[viewport])
    browser.get(study_server["links"][viewport])
    assert_fits(browser)
    browser.find_element(By.ID, "start").click()
    wait_for(lambda: browser.find_element(By.ID, "card"))
    task_url = browser.current_url
    assert_fits(browser)
    browser.find_element(By.CSS_SELECTOR, "#instructions summary").click()
    assert "You play a help-seeker" in browser.find_element(By.ID, "instructions").text  # the instructions again
    click_send(browser, "A", "\u200b\u200b")  # refused: nothing visible; the typed text stays in the box
    wait_for(lambda: browser.find_element(By.ID, "error"))
    assert "visible characters" in browser.find_element(By.ID, "error").text
    assert browser.find_element(By.CSS_SELECTOR, "#form-A input[name=text]").get_attribute("value") == "\u200b\u200b"
    for side in "AB":
        for turn in range(LAYOUT_MIN_TURNS):
            before = len(browser.find_elements(By.CSS_SELECTOR, f"#chat-{side} li.supporter"))
            long_word = "unbreakable" * 12 if turn == 0 else "and more"
            click_send(browser, side, f"turn {turn} {long_word}")
            wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, f"#chat-{side} li.supporter")) == before + 1)
            assert newest_message_in_view(browser, side), f"{viewport}: the newest reply of {side} is off screen"
            assert_fits(browser)
    a_box, b_box = (browser.find_element(By.ID, f"chat-{side}").rect for side in "AB")
    stacked = b_box["y"] >= a_box["y"] + a_box["height"]
    assert stacked == (viewport == "phone"), (a_box, b_box)  # A above B on a phone, side by side on a desktop
    criteria = [e.get_attribute("name") for e in browser.find_elements(By.CSS_SELECTOR, "#judge input[value=A]")]
    for choice in ("A", "B", "tie"):  # every choice button once, the last one stays
        browser.find_element(By.CSS_SELECTOR, f"input[name='{criteria[0]}'][value='{choice}']").click()
    for criterion in criteria[1:]:
        browser.find_element(By.CSS_SELECTOR, f"input[name='{criterion}'][value='B']").click()
    browser.find_element(By.ID, "comment").send_keys(f"judged on a {viewport}")
    assert_fits(browser)
    shots = os.environ.get("HUMAN_EVAL_SCREENSHOT_DIR")  # README pictures: HUMAN_EVAL_SCREENSHOT_DIR=docs pytest ...
    if shots:
        browser.execute_script("document.querySelector('.chats').scrollIntoView()")
        save_small_png(browser, os.path.join(shots, f"human_eval_{viewport}.png"))
    browser.find_element(By.ID, "submit-judgment").click()
    wait_for(lambda: browser.current_url != task_url and browser.find_element(By.ID, "card"))
    assert_fits(browser)
    second_task = browser.current_url
    browser.find_element(By.ID, "skip-open").click()
    browser.find_element(By.ID, "skip-reason").send_keys("the situation is not clear to me")
    browser.find_element(By.ID, "submit-skip").click()
    wait_for(lambda: browser.current_url != second_task and browser.find_element(By.ID, "card"))  # the third task
    assert_fits(browser)
    browser.find_element(By.LINK_TEXT, "home").click()
    wait_for(lambda: browser.find_element(By.ID, "progress"))
    assert "2 done" in browser.find_element(By.ID, "progress").text
    assert_fits(browser)
    browser.get(f"http://127.0.0.1:{study_server['port']}/task/{2**70}")  # an error page leads back
    assert "No such page" in browser.find_element(By.ID, "error").text
    assert_fits(browser)
    browser.find_element(By.ID, "back").click()
    wait_for(lambda: browser.find_element(By.ID, "progress"))
    con = sqlite3.connect(study_server["db"])
    rows = con.execute("SELECT a.comment, a.skip_reason, (SELECT COUNT(*) FROM judgments j WHERE j.task_id = "
                       "a.task_id AND j.annotator_id = a.annotator_id) FROM assignments a JOIN annotators n ON "
                       "n.id = a.annotator_id WHERE n.name = ? ORDER BY a.started_at", (viewport,)).fetchall()
    assert rows == [(f"judged on a {viewport}", None, len(criteria)), (None, "the situation is not clear to me", 0),
                    (None, None, 0)]


class EvilSite:
    """Another origin on 127.0.0.1 (another port): pages that post forms to the study server and frame it."""

    def __init__(self, target):
        pages = {
            "/forge": f"""<form id="f" method="post" action="{target}/next"><input name="csrf_token" value="x">
                </form><script>document.getElementById('f').submit()</script>""",
            "/forge-say": f"""<form id="f" method="post" action="{target}/task/TASK/say"><input name="side" value="A">
                <input name="text" value="forged message"></form><script>document.getElementById('f').submit()
                </script>""",
            "/frame": f"""<iframe id="ours" src="{target}/home" width="600" height="400"></iframe>
                <iframe id="control" src="/hello" width="200" height="100"></iframe>""",
            "/hello": "<p id='hello'>a framable page</p>",
        }

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path, _, query = self.path.partition("?")
                body = pages[path].replace("TASK", query).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_forms_from_another_origin_and_framing_record_nothing(browser, study_server):
    from selenium.webdriver.common.by import By
    target = f"http://127.0.0.1:{study_server['port']}"
    evil = EvilSite(target)
    con = sqlite3.connect(study_server["db"])

    def recorded():
        return con.execute("SELECT (SELECT COUNT(*) FROM assignments a JOIN annotators n ON n.id = a.annotator_id "
                           "WHERE n.name = 'forged'), (SELECT COUNT(*) FROM messages WHERE text LIKE 'forged%')"
                           ).fetchone()
    try:
        browser.get(study_server["links"]["forged"])  # the annotator has a session in this browser
        assert browser.find_elements(By.ID, "start")
        browser.get(f"{evil.url}/forge")
        wait_for(lambda: browser.current_url.startswith(target))
        assert "did not come from your evaluation page" in browser.find_element(By.ID, "error").text
        assert recorded() == (0, 0)
        browser.get(study_server["links"]["forged"])
        browser.find_element(By.ID, "start").click()  # the real page may start a task ...
        wait_for(lambda: browser.find_element(By.ID, "card"))
        task_id = re.search(r"/task/(\d+)", browser.current_url).group(1)
        browser.get(f"{evil.url}/forge-say?{task_id}")  # ... a page elsewhere may not write into it
        wait_for(lambda: browser.current_url.startswith(target))
        assert "did not come from your evaluation page" in browser.find_element(By.ID, "error").text
        assert recorded() == (1, 0)
        browser.get(f"{evil.url}/frame")
        browser.switch_to.frame(browser.find_element(By.ID, "control"))
        wait_for(lambda: browser.find_element(By.ID, "hello"))  # frames render here ...
        browser.switch_to.default_content()
        browser.switch_to.frame(browser.find_element(By.ID, "ours"))
        time.sleep(1)  # let the frame finish (or fail) loading; nothing is timed
        assert not browser.find_elements(By.ID, "progress")  # ... but not our page
        assert "Your tasks" not in browser.find_element(By.TAG_NAME, "body").text
        browser.switch_to.default_content()
    finally:
        evil.close()
    assert token_of(study_server["links"]["forged"]) not in open(study_server["log"]).read()


def test_chat_mode_reaches_both_systems(browser, tmp_path, tiny_blender_dir):
    """Chat mode with two systems: the annotator picks each in turn and talks to it; only their conversations count."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    inputs = make_study_inputs(tmp_path, tiny_blender_dir)
    argv = ["--mode", "chat", "--db", str(tmp_path / "chat.db"), "--annotators", "ann1", "--port", str(free_port()),
            "--pretrained_model_path", tiny_blender_dir, "--device", "cpu", "--min_seconds_between_messages", "0",
            *FAST_DECODING, *system_args(inputs)]
    server, links = start_server(argv, tmp_path / "chat.log")
    try:
        browser.get(links["ann1"])
        for system in ("pal", "joint"):
            Select(browser.find_element(By.ID, "system")).select_by_value(system)
            browser.find_element(By.ID, "new-conversation").click()
            wait_for(lambda: f"chat with {system}" in browser.find_element(By.TAG_NAME, "header").text)
            send(browser, "A", f"hello {system}")
            assert browser.find_elements(By.CSS_SELECTOR, "#chat-A .strategy")  # chat mode shows the strategy
        browser.find_element(By.LINK_TEXT, "home").click()
        wait_for(lambda: "Your conversations so far: 2." in browser.find_element(By.ID, "progress").text)
    finally:
        server.terminate()
        server.wait()
    con = sqlite3.connect(tmp_path / "chat.db")
    assert con.execute("SELECT system, text FROM messages WHERE speaker = 'usr' ORDER BY id").fetchall() == [
        ("pal", "hello pal"), ("joint", "hello joint")]
