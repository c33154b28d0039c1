"""The wire protocol between `bufferany_core.client` and `bufferany-server` (docs/protocol.md).

A message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON holding one
object. Client and server share this module: framing, limits and the schema of every request, so
both sides reject the same things with the same words. Standard library only (hosts import it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

from bufferany_core.errors import BadArgumentsError, ServiceError
from bufferany_core.jobs import PASSES, RenderJob, check_field, is_random_weights, job_fields

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 1 << 20  # one message, JSON body only
MAX_STRING = 4096  # any single string field (paths included)
MAX_ID_LENGTH = 64
HEADER = struct.Struct(">I")

# Job fields that name files: the client makes them absolute (the server's working directory means
# nothing to the host) and the server refuses relative ones (`weights` may also be `random[:SEED]`).
PATH_FIELDS = tuple(f.name for f, spec in job_fields() if spec.path)

TERMINAL_EVENTS = ("finished", "failed", "cancelled")


class ProtocolError(ServiceError):
    """A message that breaks the framing, is not JSON, or does not follow the schema.

    `code` is the machine-readable error code sent back in the `error` message (docs/protocol.md).
    """

    def __init__(self, message: str, code: str = "bad_request"):
        super().__init__(message)
        self.code = code


# --- Framing ---------------------------------------------------------------------------------------
def encode(message: dict[str, Any]) -> bytes:
    """Length prefix + compact UTF-8 JSON. Raises ProtocolError if the message is too large."""
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    if len(body) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            f"message of type {message.get('type')!r} is {len(body)} bytes, over the limit of {MAX_MESSAGE_BYTES}",
            code="too_large",
        )
    return HEADER.pack(len(body)) + body


def body_length(header: bytes) -> int:
    """Length announced by a 4-byte header; refuses empty and oversized messages before reading them."""
    (length,) = HEADER.unpack(header)
    if length == 0:
        raise ProtocolError("empty message (length 0)", code="bad_frame")
    if length > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            f"message length {length} is over the limit of {MAX_MESSAGE_BYTES} bytes", code="too_large"
        )
    return length


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def decode(body: bytes) -> dict[str, Any]:
    """A message body -> its JSON object. Raises ProtocolError (code `bad_message`) for anything else."""
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"message is not valid UTF-8: {exc.reason} at byte {exc.start}", code="bad_message"
        ) from None
    except RecursionError:
        raise ProtocolError("message JSON is nested too deeply", code="bad_message") from None
    except ValueError as exc:
        raise ProtocolError(f"message is not valid JSON: {exc}", code="bad_message") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"message must be a JSON object, got {type(value).__name__}", code="bad_message")
    return value


# --- Request schema --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    kind: type
    required: bool = True


REQUESTS: dict[str, dict[str, Field]] = {
    "hello": {"token": Field(str), "protocol": Field(int), "client": Field(str, required=False)},
    "submit": {"job": Field(dict)},
    "subscribe": {"job_id": Field(str)},
    "cancel": {"job_id": Field(str)},
    "status": {"job_id": Field(str, required=False)},
    "list_jobs": {"offset": Field(int, required=False), "limit": Field(int, required=False)},
    "shutdown": {},
}


def text_problem(value: str) -> str | None:
    """Why a string cannot be taken (a NUL, a lone surrogate that UTF-8 cannot carry), or None."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate at character {exc.start} (not valid Unicode text)"
    return None


def request_id(message: dict[str, Any]) -> int | str | None:
    """The request's `id` if it is a usable one, so even an error reply can name its request."""
    value = message.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH and text_problem(value) is None:
        return value
    return None


def validate_request(message: dict[str, Any]) -> dict[str, Any]:
    """Check a decoded request against REQUESTS (type, id, every field's type and size, no unknown
    fields). Returns the message; raises ProtocolError naming the field at fault. A submitted job's
    own fields are checked by `job_from_wire`."""
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in REQUESTS:
        raise ProtocolError(f"unknown request type {kind!r}; expected one of: {', '.join(REQUESTS)}")
    if "id" not in message or request_id(message) is None:
        raise ProtocolError(
            f"{kind}: field 'id' must be a 64-bit integer or a string of 1-{MAX_ID_LENGTH} characters"
        )
    schema = REQUESTS[kind]
    unknown = sorted(set(message) - set(schema) - {"type", "id"})
    if unknown:
        raise ProtocolError(f"{kind}: unknown field(s): {', '.join(map(repr, unknown[:20]))}")
    for name, spec in schema.items():
        if name not in message:
            if spec.required:
                raise ProtocolError(f"{kind}: missing field {name!r}")
            continue
        value = message[name]
        if not isinstance(value, spec.kind) or isinstance(value, bool) != (spec.kind is bool):
            raise ProtocolError(
                f"{kind}: field {name!r} must be {spec.kind.__name__}, got {type(value).__name__}"
            )
        if isinstance(value, str) and len(value) > MAX_STRING:
            raise ProtocolError(f"{kind}: field {name!r} is longer than {MAX_STRING} characters")
        if isinstance(value, str) and text_problem(value):
            raise ProtocolError(f"{kind}: field {name!r} {text_problem(value)}")
    return message


def job_from_wire(data: dict[str, Any]) -> RenderJob:
    """A `submit` message's job object -> RenderJob, checking every field's JSON type first.

    Raises BadArgumentsError (exit code 2) naming the field, so the server can pass the exit code on.
    """
    if not isinstance(data, dict):
        raise BadArgumentsError("a job must be a JSON object")
    specs = {f.name: spec for f, spec in job_fields()}
    unknown = sorted(set(data) - set(specs))
    if unknown:
        raise BadArgumentsError(f"unknown job field(s): {', '.join(map(repr, unknown[:20]))}")
    missing = [f.name for f, _ in job_fields() if f.name not in data and _required(f)]
    if missing:
        raise BadArgumentsError(f"job field(s) {', '.join(map(repr, missing))} required")
    data = {name: specs[name].upgrade(value) for name, value in data.items()}  # older clients' values
    for name, value in data.items():
        if specs[name].kind == "passes" and isinstance(value, list) and len(value) > len(PASSES):
            raise BadArgumentsError(f"job field {name!r} lists {len(value)} passes; there are {len(PASSES)}")
        if isinstance(value, str) and len(value) > MAX_STRING:
            raise BadArgumentsError(f"job field {name!r} is longer than {MAX_STRING} characters")
        for text in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            problem = text_problem(text) if isinstance(text, str) else None
            if problem:
                raise BadArgumentsError(f"job field {name!r} {problem}")
        check_field(name, specs[name], value)
    return RenderJob.from_dict(data)


def _required(field: Any) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def job_to_wire(job: RenderJob | dict[str, Any], *, cwd: str | None = None) -> dict[str, Any]:
    """A job as the client sends it: validated locally, file paths made absolute against `cwd`."""
    fields = (
        job.to_dict()
        if isinstance(job, RenderJob)
        else {k: list(v) if isinstance(v, tuple) else v for k, v in job.items()}
    )
    data = job_from_wire(fields).to_dict()
    base = cwd or os.getcwd()
    for name in PATH_FIELDS:
        if names_a_path(name, data.get(name)):
            data[name] = os.path.normpath(os.path.join(base, os.path.expanduser(data[name])))
    return data


def names_a_path(name: str, value: str | None) -> bool:
    """Whether a job field's value is a file path (`weights` may name generated weights instead)."""
    return bool(value) and name in PATH_FIELDS and not (name == "weights" and is_random_weights(value or ""))


def error_message(
    message: str, *, code: str, request: int | str | None = None, **extra: Any
) -> dict[str, Any]:
    """The `error` reply every failure turns into."""
    return {"type": "error", "id": request, "code": code, "message": message, **extra}
