"""The operator console (gateway admin listener, `/console/`): its sign-in
and API checked with plain HTTP, then its pages driven in a real browser
(Debian's chromium through chromedriver): sign in, watch a `kill -9`ed node
turn `down` and its repair progress on the page without reloading it,
schedule and cancel scrubs, browse to an object's chunks. Screenshots of
every page go to `target/test-artifacts/console/` (or
`$CAIRN_TEST_ARTIFACTS/console/`)."""

import os
import shutil
import time
from pathlib import Path

import pytest
import requests

from conftest import REPO

ARTIFACTS = Path(os.environ.get("CAIRN_TEST_ARTIFACTS", REPO / "target" / "test-artifacts")) / "console"
MiB = 1 << 20


def secret_of(cluster):
    return (cluster.data_dir / "cluster-secret").read_text().strip()


def console_url(cluster):
    return cluster.info["gateway_admin_endpoint"] + "/console/"


def signed_in(cluster):
    return cluster.console()[0]


def test_console_needs_a_session_and_the_cluster_secret(cluster):
    admin = cluster.info["gateway_admin_endpoint"]
    api = admin + "/console/api"
    # The page and its assets hold no data and are served to anyone, with a
    # policy that allows only our own script.
    page = requests.get(admin + "/console/", timeout=10)
    assert page.status_code == 200 and "Cairn console" in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert requests.get(admin + "/", timeout=10, allow_redirects=False).headers["location"] == "/console/"
    # Every data call needs a session.
    for path in ("/cluster", "/durability", "/repair", "/scrub", "/buckets", "/traffic", "/session"):
        assert requests.get(api + path, timeout=10).status_code == 401, path
    # Wrong password, wrong user, an S3 user's keys: refused alike.
    for user, password in [("admin", "not-the-secret"), ("root", secret_of(cluster)),
                           (cluster.info["access_key"], cluster.info["secret_key"])]:
        r = requests.post(api + "/login", json={"user": user, "password": password}, timeout=10)
        assert r.status_code == 401, (user, r.status_code)
        assert "set-cookie" not in r.headers
    session = signed_in(cluster)
    cookie = session.cookies.get("cairn_console")
    assert cookie and len(cookie) == 64
    login = requests.post(api + "/login", json={"user": "admin", "password": secret_of(cluster)}, timeout=10)
    flags = login.headers["set-cookie"]
    assert "HttpOnly" in flags and "SameSite=Strict" in flags
    assert session.get(api + "/session", timeout=10).json() == {"user": "admin"}
    cluster_page = session.get(api + "/cluster", timeout=10)
    assert cluster_page.headers["cache-control"] == "no-store"
    nodes = [n for rack in cluster_page.json()["racks"] for n in rack["nodes"]]
    assert len(nodes) == 12
    # A forged cross-site post (no console header) changes nothing.
    forged = session.post(api + "/scrub", json={"bucket": ""}, timeout=10)
    assert forged.status_code == 403
    # Signing out ends the session for good.
    assert session.post(api + "/logout", headers={"x-cairn-console": "1"}, timeout=10).status_code == 204
    stale = requests.get(api + "/cluster", cookies={"cairn_console": cookie}, timeout=10)
    assert stale.status_code == 401


def test_object_page_shows_what_inspect_prints(cluster, s3, bucket):
    body = os.urandom(3 * MiB)
    s3.put_object(Bucket=bucket, Key="deep/dir/file.bin", Body=body)
    s3.put_object(Bucket=bucket, Key="small.txt", Body=b"tiny")
    session = signed_in(cluster)
    api = cluster.info["gateway_admin_endpoint"] + "/console/api"
    top = session.get(api + "/objects", params={"bucket": bucket}, timeout=10).json()
    assert {"prefix": "deep/"} in top["entries"]
    assert any(e.get("key") == "small.txt" and e["size"] == 4 for e in top["entries"])
    level = session.get(api + "/objects", params={"bucket": bucket, "prefix": "deep/dir/"}, timeout=10).json()
    assert [e["key"] for e in level["entries"]] == ["deep/dir/file.bin"]
    page = session.get(api + "/object", params={"bucket": bucket, "key": "deep/dir/file.bin"}, timeout=10).json()
    inspect = cluster.cairn("inspect", f"{bucket}/deep/dir/file.bin", "--json")
    assert page["size"] == len(body) and page["etag"] == inspect["manifest"]["etag"]
    [part] = page["parts"]
    [blob] = inspect["manifest"]["parts"]
    assert (part["k"], part["m"]) == (cluster.info["k"], cluster.info["m"])
    assert [(c["index"], c["node"], c["merkle_root"]) for c in part["chunks"]] == \
        [(c["index"], c["node"], c["merkle_root"]) for c in blob["chunks"]]
    racks = {n["id"]: n["rack"] for n in cluster.info["nodes"]}
    assert all(c["rack"] == racks[c["node"]] and c["node_state"] == "up" for c in part["chunks"])
    inline = session.get(api + "/object", params={"bucket": bucket, "key": "small.txt"}, timeout=10).json()
    assert inline["inline"]["bytes"] == 4 and inline["inline"]["intact"] and inline["parts"] == []
    missing = session.get(api + "/object", params={"bucket": bucket, "key": "nope"}, timeout=10)
    assert missing.status_code == 404


# ---- in a real browser ----


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver")
    chromium = shutil.which("chromium")
    if not (driver_path and chromium):
        pytest.skip("chromium and chromedriver are not installed (./dev test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(0)
    yield driver
    expected = ("/console/api/session", "/console/api/login")
    errors = [e for e in driver.get_log("browser")
              if e["level"] == "SEVERE" and not any(path in e["message"] for path in expected)]
    driver.quit()
    # The only expected errors: the signed-out session check, the wrong password.
    assert errors == [], errors


def wait_for(what, condition, timeout=60, every=0.25):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = condition()
            if last:
                return last
        except Exception as err:  # the page is being redrawn under us
            last = err
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def shot(driver, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def text(driver, element_id):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.ID, element_id).text


def go(driver, page):
    """Follows the navigation link: a hash change, never a page load."""
    from selenium.webdriver.common.by import By
    click(f"the {page} link", lambda: driver.find_element(By.CSS_SELECTOR, f'nav a[data-page="{page}"]'))
    wait_for(f"the {page} page", lambda: driver.find_element(By.ID, "page-title").text
             and driver.execute_script("return location.hash") == f"#/{page}")


def click(what, find):
    """Clicks what `find` returns, again if a redraw replaced it first."""
    def attempt():
        find().click()
        return True
    wait_for(what, attempt, timeout=20)


def test_console_in_a_browser_shows_a_killed_node_and_its_repair_live(make_cluster, browser):
    from selenium.webdriver.common.by import By

    # Repair starts 20 s after a node is down: time to see it at risk first.
    cluster = make_cluster("--repair-after", "20s")
    s3 = cluster.client()
    s3.create_bucket(Bucket="photos")
    for i in range(6):
        s3.put_object(Bucket="photos", Key=f"2026/trip/img-{i}.jpg", Body=os.urandom(3 * MiB if i % 2 else 200_000))
    s3.put_object(Bucket="photos", Key="notes.txt", Body=b"inline")
    for i in range(12):
        s3.get_object(Bucket="photos", Key=f"2026/trip/img-{i % 6}.jpg")["Body"].read()

    driver = browser
    driver.get(console_url(cluster))
    # Signed out: the login form, and nothing else.
    wait_for("the login form", lambda: driver.find_element(By.ID, "login").is_displayed())
    assert not driver.find_element(By.ID, "nav").is_displayed()
    driver.find_element(By.ID, "login-password").send_keys("wrong")
    driver.find_element(By.ID, "login-submit").click()
    wait_for("the refusal", lambda: "wrong" in text(driver, "login-error"))
    shot(driver, "login")
    driver.find_element(By.ID, "login-password").clear()
    driver.find_element(By.ID, "login-password").send_keys(secret_of(cluster))
    driver.find_element(By.ID, "login-submit").click()

    # The cluster page: 4 racks, 12 nodes up.
    rows = lambda state: driver.find_elements(By.CSS_SELECTOR, f'tr[data-node][data-state="{state}"]')
    wait_for("12 nodes up", lambda: len(rows("up")) == 12)
    assert len(driver.find_elements(By.CSS_SELECTOR, ".rack")) == 4
    assert text(driver, "nodes-up") == "12"
    shot(driver, "cluster")
    # A marker that a page load would wipe: everything below happens in
    # this one page, updated by its polling.
    driver.execute_script("window.__cairnMarker = 'still this page'")

    victim = "node-05"
    cluster.kill9(victim)
    node_row = lambda: driver.find_element(By.CSS_SELECTOR, f'tr[data-node="{victim}"]')
    wait_for(f"{victim} down on the page", lambda: node_row().get_attribute("data-state") == "down", timeout=60)
    assert text(driver, "nodes-down") == "1"
    assert "→" in driver.find_element(By.ID, "events").text
    shot(driver, "cluster-node-down")

    # Durability: the killed node's blobs are below full width.
    go(driver, "durability")
    wait_for("blobs at risk", lambda: int(text(driver, "blobs-at-risk")) > 0)
    assert int(text(driver, "blobs-unreadable")) == 0
    shot(driver, "durability")

    # Repair: the lost node appears, chunks get rebuilt, amplification k.
    go(driver, "repair")
    wait_for(f"{victim} among the lost nodes",
             lambda: driver.find_elements(By.CSS_SELECTOR, f'tr[data-lost="{victim}"]'), timeout=90)
    wait_for("repair progress", lambda: int(text(driver, "repair-repaired")) > 0, timeout=120)
    wait_for("the queue drained",
             lambda: text(driver, "repair-queued") == "0" and text(driver, "repair-in-progress") == "0", timeout=180)
    assert float(text(driver, "repair-amplification").rstrip("×")) >= 1.0
    shot(driver, "repair")
    go(driver, "durability")
    wait_for("every blob back at full width", lambda: text(driver, "blobs-at-risk") == "0", timeout=60)

    # Rot: flip a byte in block 0 of one chunk on a live node.
    part = cluster.cairn("inspect", "photos/2026/trip/img-3.jpg", "--json")["manifest"]["parts"][0]
    rotten = part["chunks"][2]
    path = (Path(cluster.node(rotten["node"])["data_dir"]) / "chunks" / part["blob"][:2]
            / f"{part['blob']}-{rotten['index']:03}.chunk")
    raw = bytearray(path.read_bytes())
    header_len = int.from_bytes(raw[10:12], "little")  # the chunk file's own header length
    raw[header_len + 1000] ^= 0x5A
    path.write_bytes(bytes(raw))

    # Scrub jobs: schedule one from the form, see it finish with the
    # finding to the block; schedule a repeating one and cancel it.
    go(driver, "scrub")
    form = driver.find_element(By.ID, "scrub-form")
    form.find_element(By.NAME, "bucket").send_keys("photos")
    driver.find_element(By.ID, "scrub-start").click()
    done = lambda: [j for j in driver.find_elements(By.CSS_SELECTOR, "[data-job] h2 .badge")
                    if j.get_attribute("data-state") == "done"]
    wait_for("the scrub done", done, timeout=120)
    finding = wait_for("the corrupt chunk on the page", lambda: driver.execute_script(
        "const row = document.querySelector('tr[data-finding=\"corrupt\"]');"
        "return row && [...row.querySelectorAll('td')].map(td => td.textContent)"))
    assert finding[1:] == ["photos/2026/trip/img-3.jpg", part["blob"][:12], str(rotten["index"]),
                           rotten["node"], "0"], finding
    form = driver.find_element(By.ID, "scrub-form")
    form.find_element(By.NAME, "every").send_keys("3600")
    form.find_element(By.NAME, "rate").clear()
    form.find_element(By.NAME, "rate").send_keys("1")
    driver.find_element(By.ID, "scrub-start").click()
    cancel = wait_for("a cancel button", lambda: driver.find_elements(By.CSS_SELECTOR, "button[data-cancel]"))
    job = cancel[0].get_attribute("data-cancel")
    click("the cancel button", lambda: driver.find_element(By.CSS_SELECTOR, f'button[data-cancel="{job}"]'))
    wait_for("the job cancelled", lambda: driver.find_element(
        By.CSS_SELECTOR, f'[data-job="{job}"] h2 .badge').get_attribute("data-state") == "cancelled")
    shot(driver, "scrub")

    # Buckets → prefix → object: its chunks, nodes and racks.
    go(driver, "buckets")
    click("the bucket", lambda: driver.find_element(By.CSS_SELECTOR, 'tr[data-bucket="photos"] a'))
    click("the 2026/ prefix", lambda: driver.find_element(By.LINK_TEXT, "2026/"))
    click("the trip/ prefix", lambda: driver.find_element(By.LINK_TEXT, "trip/"))
    wait_for("the objects", lambda: len(driver.find_elements(By.CSS_SELECTOR, "tr[data-key]")) == 6)
    shot(driver, "objects")
    click("the object", lambda: driver.find_element(By.LINK_TEXT, "img-1.jpg"))
    # Read in one script: the page may redraw between two WebDriver calls.
    page_nodes = wait_for("the chunk table", lambda: driver.execute_script(
        "return [...document.querySelectorAll('tr[data-chunk] td:nth-child(2)')].map(td => td.textContent)"))
    assert len(page_nodes) == cluster.info["k"] + cluster.info["m"]
    assert victim not in page_nodes, "the page still places a chunk on the killed node"
    assert "INTEGRITY ROOT" in driver.find_element(By.ID, "object-facts").text.upper()
    shot(driver, "object")

    # Traffic: the GETs and PUTs above are on the charts.
    go(driver, "traffic")
    wait_for("the charts", lambda: len(driver.find_elements(By.CSS_SELECTOR, "svg.chart polyline")) >= 6)
    shot(driver, "traffic")

    assert driver.execute_script("return window.__cairnMarker") == "still this page"
    # Signing out returns to the login form.
    click("sign out", lambda: driver.find_element(By.ID, "logout"))
    wait_for("the login form again", lambda: driver.find_element(By.ID, "login").is_displayed())
