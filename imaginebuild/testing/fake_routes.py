"""What the fake xAI server's media endpoints answer: images (at once or deferred), video
jobs and their polls, and downloads of the result files, with real media bytes."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from typing import Any

from imaginebuild.testing.fake_faults import Fault, FaultKind, Route
from imaginebuild.testing.fake_media import (
    color_for,
    render_image,
    render_mp4,
    scaled,
    video_size,
)
from imaginebuild.testing.fake_records import ImageOrder, VideoJob
from imaginebuild.testing.fake_requests import (
    Reply,
    check_fields,
    clip_spec,
    enum_field,
    generation_spec,
    image_shape,
    int_field,
    media_object,
    require_prompt,
)
from imaginebuild.testing.fake_spec import (
    IMAGE_ASPECTS,
    IMAGE_RESOLUTIONS,
    image_size,
    nearest_aspect,
)
from imaginebuild.testing.fake_wire import Replier, error_body

_JOB_FATES = frozenset({FaultKind.MODERATION, FaultKind.JOB_FAILED, FaultKind.JOB_EXPIRED})


class MediaRoutes(Replier):
    """The answers of the media endpoints, once a request is routed, authorized and admitted."""

    def _images(self, route: Route, body: dict[str, Any], fault: Fault | None) -> int:
        check_fields(route, body)
        require_prompt(body)
        count = int_field(body, "n", 1, 10, 1)
        response_format = enum_field(body, "response_format", ("url", "b64_json"), "url")
        aspect = enum_field(body, "aspect_ratio", IMAGE_ASPECTS, "auto")
        resolution = enum_field(body, "resolution", IMAGE_RESOLUTIONS, "1k")
        inputs = 0
        if route is Route.EDITS:
            if ("image" in body) == ("images" in body):
                raise Reply(400, "exactly one of `image` or `images` is required")
            if "image" in body:
                # EditImageRequest: a single edit auto-detects the ratio from its input.
                shape = image_shape(media_object(body["image"], "image", "image"))
                aspect = nearest_aspect(*shape, IMAGE_ASPECTS) if shape else "1:1"
                inputs = 1
            else:
                images = body["images"]
                if not isinstance(images, list) or not 1 <= len(images) <= 3:
                    raise Reply(400, "`images` must be a list of 1 to 3 images")
                for index, item in enumerate(images):
                    media_object(item, "image", f"images[{index}]")
                inputs = len(images)
        if fault is not None and fault.kind is FaultKind.BLOCKED:
            raise Reply(400, f"Generated image rejected by content moderation: {fault.message}")
        order = ImageOrder(
            str(body["prompt"]), str(body.get("model") or "grok-imagine-image"), count,
            resolution, aspect, response_format,
            fault is not None and fault.kind is FaultKind.MODERATION,
        )  # fmt: skip
        ticks = self.fake.prices.images(count, inputs)
        if body.get("deferred") is True:
            return self._defer_images(route, order, ticks)
        delay = self.fake.image_latency_for(order.prompt)
        if delay > 0 and self.fake.stopping.wait(delay):
            return self._send_json(503, error_body(503, "the server is stopping"))
        self.fake.bill(route, ticks, prompt=order.prompt)
        payload = {"data": self._image_data(order), "usage": {"cost_in_usd_ticks": ticks}}
        return self._send_json(200, json.dumps(payload).encode())

    def _defer_images(self, route: Route, order: ImageOrder, ticks: int) -> int:
        """`deferred: true`: answer a request id at once; GET /v1/images/{id} polls it."""
        if order.model in self.fake.no_deferred_models:
            raise Reply(400, f"Argument not supported for model {order.model}: deferred")
        if order.response_format != "url":
            raise Reply(400, 'deferred requests support only response_format "url"')
        request_id = str(uuid.uuid4())
        self.fake.add_image_order(request_id, order, ticks)
        self.fake.bill(route, ticks, request_id, order.prompt)
        return self._send_json(200, json.dumps({"request_id": request_id}).encode())

    def _poll_images(self, request_id: str, fault: Fault | None) -> int:
        """GetDeferredImageResponse: 202 while pending, 200 with `data` once done."""
        job = self.fake.image_order(request_id)
        if job is None or (fault is not None and fault.kind is FaultKind.UNKNOWN_JOB):
            raise Reply(404, f"no such request: {request_id}")
        order, submitted_at, ticks = job
        if time.time() - submitted_at < self.fake.image_latency_for(order.prompt):
            return self._send(202, b"", "application/json")
        if order.data is None:
            order.data = self._image_data(order)
        done = {
            "request_id": request_id,
            "status": "done",
            "data": order.data,
            "usage": {"cost_in_usd_ticks": ticks},
        }
        return self._send_json(200, json.dumps(done).encode())

    def _image_data(self, order: ImageOrder) -> list[dict[str, object]]:
        return [self._image_entry(order, index) for index in range(order.count)]

    def _image_entry(self, order: ImageOrder, index: int) -> dict[str, object]:
        """One GeneratedImage: bytes or a URL; neither when moderation withheld it."""
        fmt = self.fake.image_format
        mime = {"jpeg": "image/jpeg", "webp": "image/webp"}.get(fmt, "image/png")
        entry: dict[str, object] = {"url": None, "b64_json": None, "mime_type": mime}
        if order.moderated:
            return entry
        size = scaled(image_size(order.resolution, order.aspect), self.fake.full_size, 128)
        color = color_for(f"{order.prompt}|{index}")
        data = self.fake.cached_media(
            ("img", size, color, fmt), lambda: render_image(size, color, fmt)
        )
        if order.response_format == "b64_json":
            encoded = base64.b64encode(data).decode()
            entry["b64_json"] = (
                f"data:{mime};base64,{encoded}" if self.fake.b64_data_uri else encoded
            )
        else:
            entry["url"] = self.fake.add_file(f".{fmt}", mime, data, None)
        return entry

    def _submit(self, route: Route, body: dict[str, Any], fault: Fault | None) -> int:
        check_fields(route, body)
        require_prompt(body)
        model = str(body.get("model") or "grok-imagine-video")
        video = route is Route.VIDEOS
        spec = generation_spec(body, model) if video else clip_spec(route, body)
        request_id = str(uuid.uuid4())
        images = len(body.get("reference_images") or []) + (1 if "image" in body else 0)
        ticks = self.fake.prices.video(spec.billed_s, spec.resolution, images, spec.input_s)
        job = VideoJob(request_id, route, model, spec.duration, spec.resolution, spec.aspect,
                   time.time(), ticks, size=spec.size)  # fmt: skip
        job.prompt = str(body["prompt"])
        if fault is not None and fault.kind in _JOB_FATES:
            job.fate, job.fate_message = fault.kind, fault.message
        self.fake.add_job(job)
        self.fake.bill(route, ticks, request_id, job.prompt)
        return self._send_json(200, json.dumps({"request_id": request_id}).encode())

    def _poll(self, request_id: str, fault: Fault | None) -> int:
        job = self.fake.job(request_id)
        if job is None or (fault is not None and fault.kind is FaultKind.UNKNOWN_JOB):
            raise Reply(404, f"no such request: {request_id}")
        fate = job.fate
        if fault is not None and fault.kind in _JOB_FATES:
            fate, job.fate_message = fault.kind, fault.message
        else:
            job.polls += 1
            ready = time.time() - job.submitted_at >= self.fake.job_latency_for(job.prompt)
            if job.file_name is None and (job.polls <= self.fake.pending_polls or not ready):
                if job.polls % 2:
                    return self._send(202, b"", "application/json")
                progress = min(99, 10 * job.polls)
                pending = json.dumps({"status": "pending", "progress": progress}).encode()
                return self._send_json(202, pending)
        base: dict[str, object] = {"model": job.model, "usage": {"cost_in_usd_ticks": job.ticks}}
        if fate is FaultKind.JOB_EXPIRED:
            return self._send_json(200, json.dumps({"status": "expired", **base}).encode())
        if fate is FaultKind.JOB_FAILED:
            code, _, message = job.fate_message.partition("\n")
            # VideoResponse when failed: `model`, `progress` and `video` are omitted.
            failed = {"status": "failed", "error": {"code": code, "message": message}}
            return self._send_json(200, json.dumps(failed).encode())
        if fate is FaultKind.MODERATION:
            video: dict[str, object] = {"url": "", "duration": 0, "respect_moderation": False}
        else:
            video = {
                "url": self._job_url(job),
                "duration": job.duration,
                "respect_moderation": True,
            }
        done = {"status": "done", "video": video, "progress": 100, **base}
        return self._send_json(200, json.dumps(done).encode())

    def _job_url(self, job: VideoJob) -> str:
        if job.file_name is None:
            if self.fake.video_file is not None:
                url = self.fake.add_file(".mp4", "video/mp4", None, self.fake.video_file)
            else:
                size = job.size or scaled(
                    video_size(job.resolution, job.aspect), self.fake.full_size, 160
                )
                data = self.fake.cached_media(
                    ("mp4", size, job.duration),  # an extension: input + added seconds
                    lambda: render_mp4(size, job.duration, (40, 90, 160)),
                )
                url = self.fake.add_file(".mp4", "video/mp4", data, None)
            job.file_name = url.rsplit("/", 1)[1]
        return f"{self.fake.origin}/files/{job.file_name}"

    def _download(self, name: str, fault: Fault | None) -> int:
        entry = self.fake.served_file(name)
        kind = fault.kind if fault is not None else None
        if entry is None or kind is FaultKind.EXPIRED_URL or entry.expires_at < time.time():
            return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        content_type = "text/html" if kind is FaultKind.WRONG_TYPE else entry.content_type
        if kind is FaultKind.CORRUPT:
            garbage = b"\x00not media\x00" * 64
            return self._send(200, garbage, content_type)
        size = entry.size()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if entry.data is not None:
            self._write_body(io.BytesIO(entry.data), size)
        elif entry.path is not None:
            with entry.path.open("rb") as source:
                self._write_body(source, size)
        return 200
