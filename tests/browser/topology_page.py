#!/usr/bin/env python3
"""Drives slotgate's topology page in a real headless Chromium, for tests/ops_page_browser.rs.

Debian's chromium (/usr/bin/chromium) through Playwright's Python package; no browser is
ever downloaded. Line protocol: one JSON command per line on stdin, one JSON answer per
line on stdout ({"ok": true|false, ...}). Commands:

  {"cmd": "open", "url": U}                       load the page once, mark the window
  {"cmd": "roles", "expect": {addr: role}, "timeout": s}
                                                  wait until the node rows show exactly these
  {"cmd": "slot_owner", "slot": n, "expect": addr, "timeout": s}
                                                  wait until the slot bar gives slot n to addr
  {"cmd": "mark", "slot": n, "states": [..], "timeout": s}
                                                  wait until slot n's marks on the bar are these
                                                  (sorted; [] for none)
  {"cmd": "not_reloaded"}                         the window opened by "open" is still the same
  {"cmd": "keyboard"}                             Tab reaches a node row; it keeps focus across redraws
  {"cmd": "layout", "width": w}                   at that width nothing overflows sideways
  {"cmd": "screenshot", "path": P}                full-page PNG at 1280 px
  {"cmd": "quit"}

Exits 3 with a message when Playwright or chromium is missing: the test must fail, not skip.
"""
import json
import os
import sys
import time

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

try:
    from playwright.sync_api import sync_playwright
except ImportError as e:
    print(json.dumps({"ok": False, "fatal": f"python playwright is missing ({e}): "
                      "pip install playwright (scripts/test.sh does)"}), flush=True)
    sys.exit(3)
if not os.access(CHROMIUM, os.X_OK):
    print(json.dumps({"ok": False, "fatal": f"{CHROMIUM} is missing: apt-get install chromium "
                      "(scripts/test.sh does)"}), flush=True)
    sys.exit(3)

ROLES_JS = """() => Object.fromEntries([...document.querySelectorAll('tr[data-node]')]
    .map(r => [r.dataset.node, r.dataset.role]))"""
OWNER_JS = """(slot) => { for (const s of document.querySelectorAll('.slotbar .seg')) {
    if (+s.dataset.start <= slot && slot <= +s.dataset.end) return s.dataset.primary; }
    return null; }"""
MARK_JS = """(slot) => [...document.querySelectorAll(`.slotbar .mark[data-slot="${slot}"]`)]
    .map(m => m.dataset.state).sort()"""


def wait(page, timeout, probe, want):
    start = time.monotonic()
    seen = None
    while True:
        seen = probe()
        if want(seen):
            return {"ok": True, "elapsed": round(time.monotonic() - start, 3), "seen": seen}
        if time.monotonic() - start > timeout:
            return {"ok": False, "elapsed": round(time.monotonic() - start, 3), "seen": seen}
        page.wait_for_timeout(100)


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        for line in sys.stdin:
            command = json.loads(line)
            cmd = command["cmd"]
            if cmd == "open":
                page.goto(command["url"])
                page.evaluate("() => { window.__slotgateTestMarker = 42; }")
                answer = {"ok": True}
            elif cmd == "roles":
                answer = wait(page, command["timeout"], lambda: page.evaluate(ROLES_JS),
                              lambda seen: seen == command["expect"])
            elif cmd == "slot_owner":
                answer = wait(page, command["timeout"],
                              lambda: page.evaluate(OWNER_JS, command["slot"]),
                              lambda seen: seen == command["expect"])
            elif cmd == "mark":
                answer = wait(page, command["timeout"],
                              lambda: page.evaluate(MARK_JS, command["slot"]),
                              lambda seen: seen == command["states"])
            elif cmd == "not_reloaded":
                marker = page.evaluate("() => window.__slotgateTestMarker")
                answer = {"ok": marker == 42, "marker": marker}
            elif cmd == "keyboard":
                page.locator("body").focus()
                reached = None
                for _ in range(40):
                    page.keyboard.press("Tab")
                    reached = page.evaluate(
                        "() => document.activeElement && document.activeElement.dataset.node")
                    if reached:
                        break
                # Two polls later the row is redrawn; focus must still be on it.
                page.wait_for_timeout(2500)
                still = page.evaluate(
                    "() => document.activeElement && document.activeElement.dataset.node")
                answer = {"ok": bool(reached) and still == reached, "reached": reached,
                          "after_redraw": still}
            elif cmd == "layout":
                page.set_viewport_size({"width": command["width"], "height": 900})
                page.wait_for_timeout(1500)
                widths = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
                answer = {"ok": widths[0] <= widths[1] + 1, "scroll_width": widths[0],
                          "viewport": widths[1]}
                page.set_viewport_size({"width": 1280, "height": 900})
            elif cmd == "screenshot":
                page.set_viewport_size({"width": 1280, "height": 900})
                page.evaluate("() => document.activeElement && document.activeElement.blur()")
                page.wait_for_timeout(1500)
                page.screenshot(path=command["path"], full_page=True)
                answer = {"ok": True}
            elif cmd == "quit":
                print(json.dumps({"ok": not errors, "page_errors": errors}), flush=True)
                break
            else:
                answer = {"ok": False, "error": f"unknown command {cmd}"}
            answer["page_errors"] = errors
            print(json.dumps(answer), flush=True)
        browser.close()


if __name__ == "__main__":
    main()
