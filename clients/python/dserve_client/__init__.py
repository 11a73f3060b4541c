"""Python client for dserve's gRPC API (dserve.v1.DiffusionService).

    client = dserve_client.Client("localhost:50051", token="...", tls=False)
    gen = client.generate("a red circle", steps=8, on_progress=print)
    open("out.png", "wb").write(gen.data)

Every call is retried on UNAVAILABLE by the published retry policy
(retry_service_config.json, the same file the dserve CLI uses): a draining
pod's GOAWAY or a restarting server does not fail the call. A Client owns one
gRPC channel; it is thread-safe (gRPC channels are) and blocks in each call.
"""

import importlib.resources
import json
from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Optional

import grpc

from ._proto import diffusion_service_pb2 as pb
from ._proto import diffusion_service_pb2_grpc as pb_grpc

__all__ = ["Client", "Generation", "JobFailed", "pb", "pb_grpc", "RETRY_SERVICE_CONFIG"]

_FORMATS = {
    "png": pb.OUTPUT_FORMAT_PNG,
    "mp4": pb.OUTPUT_FORMAT_MP4,
    "raw": pb.OUTPUT_FORMAT_RAW_TENSOR,
}
_SAMPLERS = {
    "": pb.SAMPLER_UNSPECIFIED,
    "flow_euler": pb.SAMPLER_FLOW_EULER,
    "flow_unipc": pb.SAMPLER_FLOW_UNIPC,
}

# The retry policy (gRPC service config JSON) every Client channel uses.
RETRY_SERVICE_CONFIG = (importlib.resources.files(__package__)
                        .joinpath("retry_service_config.json").read_text())


class JobFailed(Exception):
    """A job ended without a result (failed, cancelled, deadline exceeded).

    `code` is the grpc.StatusCode, `state` the pb.JobState, `job_id` the job.
    """

    def __init__(self, job_id: str, state: int, code: grpc.StatusCode,
                 message: str):
        super().__init__("job %s ended %s: %s: %s" % (
            job_id, pb.JobState.Name(state), code.name, message))
        self.job_id, self.state, self.code, self.message = (
            job_id, state, code, message)


@dataclass
class Generation:
    """A finished generation: every media's bytes (chunked results already
    reassembled), their mime type, the seed used and the Result message."""
    job_id: str
    media: List[bytes]
    mime_type: str
    seed: int
    result: "pb.Result" = field(repr=False)

    @property
    def data(self) -> bytes:
        """The first media's bytes: the image (PNG), the video (MP4) or the
        tensor (RAW)."""
        return self.media[0]


def _status_code(number: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    return grpc.StatusCode.UNKNOWN


class _Assembler:
    """Collects MediaChunk events and completes the Result they belong to."""

    def __init__(self):
        self._chunks = {}  # media_index -> bytearray

    def add(self, chunk: "pb.MediaChunk"):
        buf = self._chunks.setdefault(chunk.media_index,
                                      bytearray(chunk.total_bytes))
        end = chunk.offset + len(chunk.data)
        if chunk.offset < 0 or end > len(buf):
            raise ValueError("MediaChunk for media %d at offset %d (+%d bytes) "
                             "outside its total_bytes %d" % (
                                 chunk.media_index, chunk.offset,
                                 len(chunk.data), len(buf)))
        buf[chunk.offset:end] = chunk.data

    def finish(self, job_id: str, result: "pb.Result") -> Generation:
        media = []
        for i, m in enumerate(result.media):
            if m.chunked_size > 0:
                buf = self._chunks.get(i)
                if buf is None or len(buf) != m.chunked_size:
                    raise ValueError(
                        "media %d is chunked (%d bytes) but its MediaChunk "
                        "events %s" % (i, m.chunked_size,
                                       "never came" if buf is None else
                                       "total %d bytes" % len(buf)))
                media.append(bytes(buf))
            else:
                media.append(m.data)
        mime = result.media[0].mime_type if result.media else ""
        return Generation(job_id, media, mime, result.seed, result)


class Client:
    """One channel to a dserve server.

    target: "host:port". token: the server's --auth_token_file token (sent as
    "authorization: Bearer <token>"). tls: use TLS (root_certificates = PEM
    bytes of the CA; None = the system's). retry: use the retry policy.
    """

    def __init__(self, target: str, token: Optional[str] = None,
                 tls: bool = False, root_certificates: Optional[bytes] = None,
                 retry: bool = True, options: Optional[list] = None):
        opts = [("grpc.max_receive_message_length", 64 << 20)]
        if retry:
            opts += [("grpc.enable_retries", 1),
                     ("grpc.service_config",
                      json.dumps(json.loads(RETRY_SERVICE_CONFIG)))]
        opts += list(options or [])
        if tls:
            creds = grpc.ssl_channel_credentials(
                root_certificates=root_certificates)
            self._channel = grpc.secure_channel(target, creds, options=opts)
        else:
            self._channel = grpc.insecure_channel(target, options=opts)
        self._stub = pb_grpc.DiffusionServiceStub(self._channel)
        self._metadata = (("authorization", "Bearer " + token),) if token else ()

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- requests ---------------------------------------------------------

    @staticmethod
    def request(prompt: str, *, model: str = "", negative_prompt: str = "",
                width: int = 0, height: int = 0, num_frames: int = 0,
                steps: int = 0, guidance_scale: Optional[float] = None,
                seed: Optional[int] = None, sampler: str = "",
                flow_shift: Optional[float] = None, output_format: str = "png",
                fps: int = 0, priority: int = 0, preview_every_n_steps: int = 0,
                client_request_id: str = "") -> "pb.GenerateRequest":
        """Builds a GenerateRequest; 0/None = the model's default (see the
        proto). output_format: "png", "mp4" or "raw"; sampler: "",
        "flow_euler" or "flow_unipc"."""
        if output_format not in _FORMATS:
            raise ValueError("output_format %r: allowed %s" % (
                output_format, sorted(_FORMATS)))
        if sampler not in _SAMPLERS:
            raise ValueError("sampler %r: allowed %s" % (
                sampler, sorted(_SAMPLERS)))
        req = pb.GenerateRequest(
            model=model, prompt=prompt, negative_prompt=negative_prompt,
            width=width, height=height, num_frames=num_frames,
            num_inference_steps=steps, sampler=_SAMPLERS[sampler],
            output_format=_FORMATS[output_format], fps=fps, priority=priority,
            preview_every_n_steps=preview_every_n_steps,
            client_request_id=client_request_id)
        if guidance_scale is not None:
            req.guidance_scale = guidance_scale
        if seed is not None:
            req.seed = seed
        if flow_shift is not None:
            req.flow_shift = flow_shift
        return req

    def generate(self, prompt: str, *,
                 on_progress: Optional[Callable[["pb.Progress"], None]] = None,
                 timeout: Optional[float] = None, **kwargs) -> Generation:
        """Generates and blocks until the result. kwargs: see request().
        on_progress sees every Progress event. Raises grpc.RpcError with the
        server's status (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...)."""
        stream = self._stub.Generate(self.request(prompt, **kwargs),
                                     timeout=timeout, metadata=self._metadata)
        return self._collect(stream, on_progress)

    def submit(self, prompt: str, *, timeout: Optional[float] = None,
               **kwargs) -> "pb.Job":
        """Queues a job and returns it at once (state QUEUED)."""
        return self._stub.SubmitJob(
            pb.SubmitJobRequest(request=self.request(prompt, **kwargs)),
            timeout=timeout, metadata=self._metadata)

    def get(self, job_id: str, timeout: Optional[float] = None) -> "pb.Job":
        return self._stub.GetJob(pb.GetJobRequest(job_id=job_id),
                                 timeout=timeout, metadata=self._metadata)

    def cancel(self, job_id: str, timeout: Optional[float] = None) -> "pb.Job":
        return self._stub.CancelJob(pb.CancelJobRequest(job_id=job_id),
                                    timeout=timeout, metadata=self._metadata)

    def events(self, job_id: str,
               timeout: Optional[float] = None) -> Iterator["pb.GenerateEvent"]:
        """WatchJob's raw events (current state first, then every later one)."""
        return self._stub.WatchJob(pb.WatchJobRequest(job_id=job_id),
                                   timeout=timeout, metadata=self._metadata)

    def watch(self, job_id: str, *,
              on_progress: Optional[Callable[["pb.Progress"], None]] = None,
              timeout: Optional[float] = None) -> Generation:
        """Waits for a submitted job's result (reassembling chunked media).
        Raises JobFailed when the job ends without one."""
        return self._collect(self.events(job_id, timeout), on_progress)

    def list_jobs(self, states=(), page_size: int = 0, page_token: str = "",
                  timeout: Optional[float] = None) -> "pb.ListJobsResponse":
        return self._stub.ListJobs(
            pb.ListJobsRequest(states=list(states), page_size=page_size,
                               page_token=page_token),
            timeout=timeout, metadata=self._metadata)

    def models(self, timeout: Optional[float] = None) -> List["pb.ModelInfo"]:
        return list(self._stub.ListModels(pb.ListModelsRequest(),
                                          timeout=timeout,
                                          metadata=self._metadata).models)

    def server_info(self, timeout: Optional[float] = None) -> "pb.ServerInfo":
        return self._stub.GetServerInfo(pb.GetServerInfoRequest(),
                                        timeout=timeout,
                                        metadata=self._metadata)

    # -- internals --------------------------------------------------------

    @staticmethod
    def _collect(stream, on_progress) -> Generation:
        assembler = _Assembler()
        job_id = ""
        for event in stream:
            job_id = event.job_id or job_id
            kind = event.WhichOneof("event")
            if kind == "progress" and on_progress is not None:
                on_progress(event.progress)
            elif kind == "media_chunk":
                assembler.add(event.media_chunk)
            elif kind == "result":
                return assembler.finish(job_id, event.result)
            elif kind == "ended":
                raise JobFailed(job_id, event.ended.state,
                                _status_code(event.ended.status_code),
                                event.ended.status_message)
        raise JobFailed(job_id, pb.JOB_STATE_UNSPECIFIED,
                        grpc.StatusCode.UNKNOWN,
                        "the stream ended without a Result")
