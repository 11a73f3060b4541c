#!/usr/bin/python3
"""dserve_client against a real dserve_server (Debian's python3-grpcio).

Starts //server:dserve_server on a free port with a bearer token, then:
generate() returns a PNG of the requested size with progress callbacks;
submit/get/watch give the same picture as generate() for the same seed;
cancel() ends a queued job CANCELLED and watch() raises JobFailed; a bad
request raises INVALID_ARGUMENT; a missing token UNAUTHENTICATED; the retry
policy retries UNAVAILABLE (against a small in-process server that refuses
twice).
Also (no server): chunked media (MediaChunk events) are reassembled.
Args: <dserve_server> <dserve_worker>."""
import os, socket, struct, subprocess, sys, threading, time, zlib

sys.path.insert(0, os.path.join(os.getcwd(), "clients/python"))
import grpc  # noqa: E402
import dserve_client  # noqa: E402
from dserve_client import pb  # noqa: E402

SERVER, WORKER = sys.argv[1], sys.argv[2]
TMP = os.environ.get("TEST_TMPDIR", "/tmp")
TOKEN = "s3cret-token"
failures = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        failures.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def png_size(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    # IHDR CRC must hold: a truncated/garbled PNG fails here.
    length = struct.unpack(">I", data[8:12])[0]
    chunk = data[12:16 + length]
    crc = struct.unpack(">I", data[16 + length:20 + length])[0]
    if zlib.crc32(chunk) != crc or data[-8:-4] != b"IEND":
        return None
    return struct.unpack(">II", data[16:24])


def start_server(port, log):
    token_file = os.path.join(TMP, "token")
    with open(token_file, "w") as f:
        f.write(TOKEN + "\n")
    return subprocess.Popen(
        [SERVER, "--port=%d" % port, "--replicas=1", "--worker_threads=1",
         "--queue_capacity=8", "--worker_binary=" + WORKER,
         "--auth_token_file=" + token_file, "--grace_period_s=1"],
        stdout=log, stderr=subprocess.STDOUT)


def wait_ready(client, deadline_s=120):
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            info = client.server_info(timeout=2)
            if any(r.state in (pb.REPLICA_STATE_READY, pb.REPLICA_STATE_BUSY)
                   for r in info.replicas):
                return True
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    return False


def test_chunk_reassembly():
    payload = bytes(range(256)) * 9000  # 2.3 MB: three 1 MiB chunks.
    events = []
    step = 1 << 20
    for off in range(0, len(payload), step):
        events.append(pb.GenerateEvent(job_id="j", media_chunk=pb.MediaChunk(
            media_index=0, offset=off, total_bytes=len(payload),
            data=payload[off:off + step])))
    events.append(pb.GenerateEvent(job_id="j", result=pb.Result(
        seed=7, media=[pb.Media(mime_type="video/mp4",
                                chunked_size=len(payload))])))
    gen = dserve_client.Client._collect(iter(events), None)
    check(gen.data == payload and gen.mime_type == "video/mp4"
          and gen.seed == 7, "MediaChunk events reassembled into the media")
    try:
        dserve_client.Client._collect(iter(events[-1:]), None)
        check(False, "a chunked Result without its chunks is refused")
    except ValueError as e:
        check("never came" in str(e),
              "a chunked Result without its chunks is refused: %s" % e)


def test_retry_on_unavailable():
    """A server that answers UNAVAILABLE twice, then OK: the packaged retry
    policy makes the call succeed on the third attempt; without it the
    first UNAVAILABLE is the caller's."""
    from concurrent import futures
    from dserve_client import pb_grpc

    class Flaky(pb_grpc.DiffusionServiceServicer):
        calls = 0

        def ListModels(self, request, context):
            Flaky.calls += 1
            if Flaky.calls % 3 != 0:
                context.abort(grpc.StatusCode.UNAVAILABLE, "draining")
            return pb.ListModelsResponse(models=[pb.ModelInfo(name="m")])

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_DiffusionServiceServicer_to_server(Flaky(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with dserve_client.Client("127.0.0.1:%d" % port) as c:
            models = c.models(timeout=30)
        check([m.name for m in models] == ["m"] and Flaky.calls == 3,
              "UNAVAILABLE twice, then OK: retried to success (%d calls)" %
              Flaky.calls)
        with dserve_client.Client("127.0.0.1:%d" % port, retry=False) as c:
            try:
                c.models(timeout=30)
                check(False, "without the retry policy UNAVAILABLE surfaces")
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.UNAVAILABLE,
                      "without the retry policy UNAVAILABLE surfaces")
    finally:
        server.stop(None)


def main():
    test_chunk_reassembly()
    test_retry_on_unavailable()
    port = free_port()
    target = "127.0.0.1:%d" % port
    log = open(os.path.join(TMP, "server.log"), "w")
    client = dserve_client.Client(target, token=TOKEN)

    server = start_server(port, log)
    try:
        check(wait_ready(client), "a replica becomes READY")
        model = next(m for m in client.models() if m.is_default)
        h = model.size_step * 4
        w = 2 * h
        steps = []
        stages = []

        def on_progress(p):
            stages.append(p.stage)
            if p.stage == pb.PROGRESS_STAGE_DENOISE:
                steps.append(p.step)

        gen = client.generate("a red circle on a blue background, top left",
                              width=w, height=h, steps=2, seed=11,
                              on_progress=on_progress, timeout=120)
        check(png_size(gen.data) == (w, h) and gen.mime_type == "image/png",
              "generate() returns a %dx%d PNG (got %r)" % (
                  w, h, png_size(gen.data)))
        check(gen.seed == 11 and gen.job_id, "seed and job id reported")
        check(steps == [1, 2], "on_progress saw the steps: %r" % steps)
        check(stages[0] == pb.PROGRESS_STAGE_ENCODE and
              stages[-1] == pb.PROGRESS_STAGE_DECODE,
              "ENCODE first, DECODE last: %r" % stages)

        video = client.generate("a red circle moving right", width=w,
                                height=h, num_frames=3, fps=4, steps=2,
                                seed=3, output_format="mp4", timeout=120)
        check(video.mime_type == "video/mp4" and video.data[4:8] == b"ftyp",
              "generate(output_format='mp4') returns an MP4 (%d bytes)" %
              len(video.data))

        job = client.submit("a red circle on a blue background, top left",
                            width=w, height=h, steps=2, seed=11)
        check(job.job_id and job.state in (pb.JOB_STATE_QUEUED,
                                           pb.JOB_STATE_RUNNING,
                                           pb.JOB_STATE_SUCCEEDED),
              "submit() returns a job: %s" % job.job_id)
        watched = client.watch(job.job_id, timeout=120)
        check(watched.data == gen.data,
              "watch() gives the same PNG as generate() for the same seed")
        got = client.get(job.job_id)
        check(got.state == pb.JOB_STATE_SUCCEEDED
              and got.result.media[0].data == gen.data,
              "get() returns the finished job with its result")
        check(any(j.job_id == job.job_id for j in client.list_jobs().jobs),
              "list_jobs() lists it")

        # Cancel: a long job occupies the replica, a second one waits queued.
        busy = client.submit("blue", width=w, height=h,
                             steps=model.max_steps, seed=1)
        queued = client.submit("red", width=w, height=h, steps=2, seed=2)
        cancelled = client.cancel(queued.job_id)
        check(cancelled.state == pb.JOB_STATE_CANCELLED,
              "cancel() ends a queued job CANCELLED: %s" %
              pb.JobState.Name(cancelled.state))
        try:
            client.watch(queued.job_id, timeout=30)
            check(False, "watch() of a cancelled job raises JobFailed")
        except dserve_client.JobFailed as e:
            check(e.state == pb.JOB_STATE_CANCELLED
                  and e.code == grpc.StatusCode.CANCELLED,
                  "watch() of a cancelled job raises JobFailed: %s" % e)
        client.cancel(busy.job_id)

        try:
            client.generate("x", width=w + 1, height=h, steps=2)
            check(False, "a bad width raises INVALID_ARGUMENT")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT
                  and "width" in e.details(),
                  "a bad width raises INVALID_ARGUMENT: %s" % e.details())
        try:
            dserve_client.Client(target).models(timeout=10)
            check(False, "no token: UNAUTHENTICATED")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNAUTHENTICATED,
                  "no token: UNAUTHENTICATED (%s)" % e.code())
    finally:
        server.terminate()
        server.wait(timeout=60)
        client.close()
    if failures:
        print(open(os.path.join(TMP, "server.log")).read()[-4000:])
        print("%d FAILED: %s" % (len(failures), failures))
        sys.exit(1)
    print("PASSED")


if __name__ == "__main__":
    main()
