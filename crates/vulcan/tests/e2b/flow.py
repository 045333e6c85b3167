"""One E2B SDK flow against a Vulcan server, run by tests/e2b.rs with the real `e2b`
package from PyPI, unmodified. E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY name the
server; E2B_TEMPLATE the image the sandboxes start from. Each step prints what it saw;
the first step that does not hold raises, and the exit status is not 0."""

import os
import sys
import time
import uuid

from e2b import (
    PtySize,
    CommandExitException,
    NotFoundException,
    Sandbox,
    SandboxException,
    SandboxQuery,
)

TEMPLATE = os.environ["E2B_TEMPLATE"]
RUN = uuid.uuid4().hex


def check(what, holds, seen):
    print(f"{'ok' if holds else 'FAILED'}: {what}: {seen!r}", flush=True)
    if not holds:
        sys.exit(f"{what} does not hold: saw {seen!r}")


sbx = Sandbox.create(
    TEMPLATE, timeout=300, metadata={"run": RUN}, envs={"GREETING": "hello"}
)
check("created", bool(sbx.sandbox_id), sbx.sandbox_id)

r = sbx.commands.run("echo hi")
check("echo hi", (r.stdout, r.exit_code) == ("hi\n", 0), (r.stdout, r.exit_code))

try:
    sbx.commands.run("echo oops >&2; exit 3")
    check("a failing command raises", False, "no exception")
except CommandExitException as e:
    check("a failing command raises", (e.exit_code, e.stderr) == (3, "oops\n"), (e.exit_code, e.stderr))

arrivals = []
sbx.commands.run(
    "echo one; sleep 1.5; echo two",
    on_stdout=lambda line: arrivals.append((time.monotonic(), line)),
)
lines = "".join(line for _, line in arrivals)
gap = arrivals[-1][0] - arrivals[0][0] if len(arrivals) > 1 else 0
check("output arrives as printed", lines == "one\ntwo\n" and gap >= 1.0, (lines, round(gap, 2)))

r = sbx.commands.run("echo $GREETING $EXTRA; pwd", envs={"EXTRA": "there"}, cwd="/tmp")
check("envs and cwd", r.stdout == "hello there\n/tmp\n", r.stdout)

sleeper = sbx.commands.run("sleep 600", background=True)
pids = [p.pid for p in sbx.commands.list()]
check("a background command is listed", sleeper.pid in pids, pids)

reader = sbx.commands.run("read line; echo got $line", background=True, stdin=True)
sbx.commands.send_stdin(reader.pid, "abc\n")
r = reader.wait()
check("stdin reaches it", r.stdout == "got abc\n", r.stdout)

again = sbx.commands.connect(sleeper.pid)
check("kill", sbx.commands.kill(sleeper.pid) is True, sleeper.pid)
try:
    again.wait()
    check("a killed command ends as killed", False, "it exited 0")
except CommandExitException as e:
    check("a killed command ends as killed", e.exit_code != 0, (e.exit_code, e.error))
pids = [p.pid for p in sbx.commands.list()]
check("a killed command is no longer listed", sleeper.pid not in pids, pids)

# A terminal: the size it was opened with, then the one it is resized to, typed input.
typed = []
def on_pty(chunk):
    typed.append(bytes(chunk))
    if not resized and b"24 80" in b"".join(typed):
        resized.append(True)
        sbx.pty.resize(term.pid, PtySize(rows=30, cols=100))
        sbx.pty.send_stdin(term.pid, b"go\n")
resized = []
term = sbx.pty.create(PtySize(rows=24, cols=80))
sbx.pty.send_stdin(term.pid, b"stty size; read go; stty size; exit 4\n")
try:
    term.wait(on_pty=on_pty)
    code = 0
except CommandExitException as e:
    code = e.exit_code
out = b"".join(typed)
check("a terminal has its size, resized", code == 4 and b"24 80" in out and b"30 100" in out, (code, out[-300:]))

sbx.files.write("/tmp/t.txt", "some text")
check("text round trip", sbx.files.read("/tmp/t.txt") == "some text", "some text")
big = os.urandom(20 << 20)
sbx.files.write("/tmp/big.bin", big)
back = sbx.files.read("/tmp/big.bin", format="bytes")
check("20 MB round trip", bytes(back) == big, len(back))
names = sorted(e.name for e in sbx.files.list("/tmp"))
check("list", {"t.txt", "big.bin"} <= set(names), names)
check("exists", (sbx.files.exists("/tmp/t.txt"), sbx.files.exists("/tmp/nope")) == (True, False), "")
check("make_dir", sbx.files.make_dir("/tmp/d/e") is True, "/tmp/d/e")
check("make_dir of one that exists", sbx.files.make_dir("/tmp/d/e") is False, "/tmp/d/e")
info = sbx.files.rename("/tmp/t.txt", "/tmp/d/u.txt")
check("rename", info.path == "/tmp/d/u.txt" and sbx.files.read("/tmp/d/u.txt") == "some text", info.path)
sbx.files.remove("/tmp/d")
check("remove", not sbx.files.exists("/tmp/d"), "/tmp/d")
try:
    sbx.files.read("/tmp/nope")
    check("reading a missing file raises", False, "no exception")
except NotFoundException as e:
    check("reading a missing file raises", True, str(e)[:60])

sbx.files.make_dir("/tmp/w")
watcher = sbx.files.watch_dir("/tmp/w", recursive=True)
sbx.files.write("/tmp/w/a.txt", "x")
sbx.commands.run("mkdir /tmp/w/sub && echo y > /tmp/w/sub/b.txt && rm /tmp/w/a.txt")
seen = set()
deadline = time.monotonic() + 10
want = {("a.txt", "create"), ("sub/b.txt", "create"), ("a.txt", "remove")}
while not want <= seen and time.monotonic() < deadline:
    seen |= {(e.name, e.type.value) for e in watcher.get_new_events()}
    time.sleep(0.2)
check("watch_dir sees changes, below too", want <= seen, sorted(seen))
watcher.stop()

listed = Sandbox.list(query=SandboxQuery(metadata={"run": RUN})).next_items()
check("list by metadata", [s.sandbox_id for s in listed] == [sbx.sandbox_id], [s.sandbox_id for s in listed])
other = Sandbox.list(query=SandboxQuery(metadata={"run": "another"})).next_items()
check("another metadata finds none", other == [], other)

short = Sandbox.create(TEMPLATE, timeout=300)
short.set_timeout(3)
time.sleep(7)
check("set_timeout ends it at the new deadline", short.is_running() is False, short.sandbox_id)

metrics = sbx.get_metrics()
check("metrics over time", len(metrics) >= 2 and metrics[-1].mem_used > 0
      and metrics[0].timestamp < metrics[-1].timestamp, len(metrics))

napper = Sandbox.create(TEMPLATE, timeout=3, lifecycle={"on_timeout": "pause", "auto_resume": True})
napper.files.write("/tmp/nap.txt", "napped")
deadline = time.monotonic() + 20
while Sandbox.get_info(napper.sandbox_id).state.value != "paused" and time.monotonic() < deadline:
    time.sleep(0.5)
state = Sandbox.get_info(napper.sandbox_id).state.value
check("on_timeout pause pauses it at its deadline", state == "paused", state)
r = napper.commands.run("cat /tmp/nap.txt")
check("auto_resume: a command wakes it with its files", r.stdout == "napped", r.stdout)
napper.kill()

sbx.files.write("/tmp/kept.txt", "kept across the pause")
counter = sbx.commands.run("i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo $i; sleep 0.1; done", background=True)
check("pause", sbx.pause() is True, sbx.sandbox_id)
info = Sandbox.get_info(sbx.sandbox_id)
check("paused", str(info.state.value) == "paused", info.state)
back = Sandbox.connect(sbx.sandbox_id)
check("connect resumes it with its files", back.files.read("/tmp/kept.txt") == "kept across the pause", "")
pids = [p.pid for p in back.commands.list()]
check("a background command runs on after the pause", counter.pid in pids, pids)
r = back.commands.connect(counter.pid).wait()
check("it ends as it would have", r.exit_code == 0 and r.stdout.split()[-1] == "40", (r.exit_code, r.stdout[-20:]))
r = back.commands.run("echo after")
check("it runs commands again", r.stdout == "after\n", r.stdout)

back.kill()
try:
    back.commands.run("echo too late")
    check("a killed sandbox refuses commands", False, "it ran")
except SandboxException as e:
    check("a killed sandbox refuses commands", True, type(e).__name__)
try:
    Sandbox.connect(sbx.sandbox_id)
    check("connecting to a killed sandbox raises", False, "it connected")
except (NotFoundException, SandboxException) as e:
    check("connecting to a killed sandbox raises", True, type(e).__name__)
print("flow complete", flush=True)
