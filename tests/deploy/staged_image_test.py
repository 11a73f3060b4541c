#!/usr/bin/python3
"""Stages the runtime image's files (deploy/image_files.txt, the list the
Dockerfile stages) into a directory, checks that the runtime packages of
deploy/runtime_packages.txt provide every library the binaries load, runs
the Dockerfile's ENTRYPOINT + CMD from that directory (paths under
/opt/dserve rebased onto it, ports made free) and serves the README prompt
with the staged CLI. Also: missing weights refuse to start, naming the path;
the CLI draws no progress bar when stderr is not a terminal; SIGTERM exits 0.

No Docker here: the staged tree has exactly the image's files, and the
server runs from an empty working directory so nothing outside the tree
(runfiles, the source checkout) can stand in for a missing file."""
import json, os, re, shutil, signal, socket, struct, subprocess, sys, time
import urllib.request, zlib

RUNFILES = os.getcwd()  # bazel runs sh_tests in <runfiles>/<workspace>
TMP = os.environ.get("TEST_TMPDIR", "/tmp")
ROOT = os.path.join(TMP, "image")
PROMPT = "a red circle on a blue background, top left"
K8S_METRIC_USERS = ["deploy/k8s/monitoring/dserve-dashboard.json",
                    "deploy/k8s/monitoring/prometheus-adapter-rules.yaml",
                    "deploy/k8s/base/hpa.yaml"]
failures = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        failures.append(what)


def dockerfile_json(keyword):
    text = open("deploy/Dockerfile").read()
    m = re.search(r"^%s (\[.*\])\s*$" % keyword, text, re.M)
    return json.loads(m.group(1))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def packages_of(paths):
    """Debian package of each library path (None when dpkg knows none), with
    one dpkg call: /lib and /usr/lib are the same directory (merged /usr),
    but dpkg records one of the two."""
    variants = {}
    for path in paths:
        for v in {path, os.path.realpath(path), re.sub(r"^/usr", "", path),
                  re.sub(r"^/usr", "", os.path.realpath(path))}:
            variants[v] = path
            if not v.startswith("/usr"):
                variants["/usr" + v] = path
    out = subprocess.run(["dpkg", "-S"] + sorted(variants), capture_output=True,
                         text=True).stdout
    found = {}
    for line in out.splitlines():
        pkg, _, file = line.partition(": ")
        if file in variants:
            found[variants[file]] = pkg.split(":")[0]
    return found


def check_libraries(binaries):
    wanted = {l.strip() for l in open("deploy/runtime_packages.txt")
              if l.strip() and not l.startswith("#")}
    base = {"libc6", "libstdc++6", "libgcc-s1"}
    for b in binaries:
        needed = re.findall(r"\(NEEDED\).*\[(.*)\]",
                            subprocess.run(["readelf", "-d", b], capture_output=True,
                                           text=True).stdout)
        ldd = subprocess.run(["ldd", b], capture_output=True, text=True).stdout
        where = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
        missing = []
        owners = packages_of([where[so] for so in needed if where.get(so, "not") != "not"])
        for so in needed:
            if so.startswith("ld-linux"):
                continue  # the dynamic loader, part of libc6
            path = where.get(so)
            if path is None or path == "not":
                missing.append(so + " (not found)")
                continue
            pkg = owners.get(path)
            if pkg not in wanted | base:
                missing.append("%s from %s" % (so, pkg))
        check(not missing, "%s: every NEEDED library (%d) comes from "
              "deploy/runtime_packages.txt or the base image%s" % (
                  os.path.basename(b), len(needed),
                  "" if not missing else "; missing: " + ", ".join(missing)))


def rebase(args):
    return [a.replace("/opt/dserve", ROOT + "/opt/dserve") for a in args]


def start_server(extra_cmd, log):
    entry = rebase(dockerfile_json("ENTRYPOINT"))
    rundir = os.path.join(TMP, "run")
    os.makedirs(rundir, exist_ok=True)
    return subprocess.Popen(entry + extra_cmd, cwd=rundir, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def png_rgb(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, rows, prev, stride = zlib.decompress(idat), [], bytearray(w * bpp), w * bpp
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return rows


def mean(rows, x0, x1, y0, y1):
    px = [rows[y][x] for y in range(y0, y1) for x in range(x0, x1)]
    return [sum(p[i] for p in px) / len(px) for i in range(3)]


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    subprocess.run(["bash", "deploy/stage_image.sh", "deploy/image_files.txt",
                    RUNFILES, RUNFILES, ROOT], check=True)
    staged = sorted(os.path.relpath(os.path.join(d, f), ROOT)
                    for d, _, fs in os.walk(ROOT) for f in fs)
    print("staged image tree:\n  " + "\n  ".join(staged))
    bins = [os.path.join(ROOT, p) for p in staged if "/bin/" in p or "/worker/" in p]
    check_libraries(bins)
    cli = os.path.join(ROOT, "opt/dserve/bin/dserve")

    # Missing weights: refuse to start, naming the path.
    models = os.path.join(ROOT, "opt/dserve/models")
    os.rename(models, models + ".away")
    with open(os.path.join(TMP, "noweights.log"), "w+") as log:
        p = start_server(["--port=%d" % free_port()], log)
        try:
            rc = p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = None
        log.seek(0)
        text = log.read()
    os.rename(models + ".away", models)
    want = ROOT + "/opt/dserve/models/dserve-tiny-shapes/config.json"
    check(rc not in (0, None) and want in text,
          "without its weights the server refuses to start (exit %s) naming %s"
          % (rc, want))
    print("  " + (text.strip().splitlines() or [""])[-1])

    port, mport = free_port(), free_port()
    log = open(os.path.join(TMP, "server.log"), "w+")
    server = start_server(["--port=%d" % port, "--metrics_port=%d" % mport], log)
    try:
        deadline = time.time() + 120
        while True:
            r = subprocess.run([cli, "--server=127.0.0.1:%d" % port, "--timeout_s=5",
                                "info"], capture_output=True, text=True)
            if r.returncode == 0 and "ready" in r.stdout.lower():
                break
            if time.time() > deadline or server.poll() is not None:
                log.seek(0)
                print(log.read())
                check(False, "the staged server became ready")
                return
            time.sleep(0.5)
        out = os.path.join(TMP, "red_circle.png")
        err_path = os.path.join(TMP, "cli.stderr")
        with open(err_path, "w") as err:  # a file, not a terminal
            r = subprocess.run([cli, "--server=127.0.0.1:%d" % port, "generate",
                                "--prompt", PROMPT, "--width", "32", "--height", "32",
                                "--steps", "20", "--seed", "7", "--out", out],
                               stdout=subprocess.PIPE, stderr=err, text=True,
                               timeout=120)
        stderr = open(err_path).read()
        print(r.stdout.strip())
        check(r.returncode == 0, "staged CLI generate exit code %d" % r.returncode)
        check("\r" not in stderr and "[" not in stderr,
              "no progress bar when stderr is a file (stderr: %r)" % stderr[:80])
        rows = png_rgb(out)
        tl, br = mean(rows, 0, 12, 0, 12), mean(rows, 20, 32, 20, 32)
        check(tl[0] > tl[2] + 40 and br[2] > br[0] + 40,
              "the PNG is a red shape top left on blue: top-left mean RGB %s, "
              "bottom-right %s" % ([round(v) for v in tl], [round(v) for v in br]))
        metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                         timeout=10).read().decode()
        # Every metric the Kubernetes package uses (dashboard, HPA, adapter
        # rule) is in a real server's scrape.
        used = set()
        for f in K8S_METRIC_USERS:
            used |= set(re.findall(r"dserve_[a-z_]+", open(f).read()))
        used.discard("dserve_grafana_dashboard")
        exported = set(re.findall(r"^(dserve_[a-z_]+)", metrics, re.M))
        check(used and used <= exported, "the %d metrics deploy/k8s uses are all in "
              "/metrics%s" % (len(used), "" if used <= exported else
                              "; missing: " + ", ".join(sorted(used - exported))))
        check('dserve_jobs_total{state="SUCCEEDED"} 1' in metrics and
              "dserve_build_info{" in metrics, "the staged server's /metrics "
              "counts the job and exports dserve_build_info")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            rc = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            rc = None
        check(rc == 0, "SIGTERM: the staged server exits %s" % rc)
        log.seek(0)
        text = log.read()
        check("random weights" not in text, "no random weights were served")
        m = re.search(r"starting .*", text)
        if m:
            print("  server log: " + m.group(0))


if __name__ == "__main__":
    main()
    print("%d failed" % len(failures))
    sys.exit(1 if failures else 0)
