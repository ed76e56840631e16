"""Every problem `type` the service answers with, and what it means to a client.

A problem's `type` is the relative URI `/problems#<slug>` (RFC 9457 section 3.1.1:
a relative reference is resolved against the request's URI), so it leads to its
entry on the page that this service itself serves at `/problems` (service/web/docs_pages.py),
on every deployment and offline; docs/problems.md holds the same list. A client
compares the `type` string; it never changes for a given kind of problem.
tests/web/test_openapi_contract.py checks that every error class of the service
has an entry here and in docs/problems.md, with the same status and title.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from service.errors import PROBLEM_BASE


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    meaning: str

    @property
    def uri(self) -> str:
        return PROBLEM_BASE + self.slug


PROBLEM_TYPES: Final[tuple[ProblemType, ...]] = (
    ProblemType(
        "bad-request",
        400,
        "Malformed request",
        "The request could not be read: a header that is not UTF-8, two Authorization "
        "headers, a body that is not JSON, a duplicate key, a bad cursor. Fix the request; "
        "retrying it unchanged fails again.",
    ),
    ProblemType(
        "malformed-json",
        400,
        "Malformed JSON",
        "A referral's or records request's envelope is not JSON at all.",
    ),
    ProblemType(
        "json-too-deep",
        400,
        "The JSON body nests too deeply",
        "Arrays and objects in the body nest deeper than the documented limit; the body "
        "was refused before it was parsed.",
    ),
    ProblemType(
        "unauthorized",
        401,
        "Authentication required",
        "No bearer token, or one that is malformed, expired, wrongly signed, or whose "
        "organization is unknown or inactive. The answer carries `WWW-Authenticate`.",
    ),
    ProblemType(
        "forbidden",
        403,
        "Not permitted",
        "A valid principal whose role (or organization's sector) does not permit this operation.",
    ),
    ProblemType(
        "not-found",
        404,
        "Not found",
        "No such object, or one this principal may not see: the two look the same, so "
        "that nothing reveals what another organization holds.",
    ),
    ProblemType(
        "method-not-allowed",
        405,
        "Method not allowed",
        "The path exists, the method does not; `Allow` names every method the path supports.",
    ),
    ProblemType(
        "conflict",
        409,
        "State conflict",
        "The object is not in a state that allows this (for example accepting a referral "
        "that was declined). Read it again before deciding what to do.",
    ),
    ProblemType(
        "payload-too-large",
        413,
        "Request body too large",
        "The body is larger than the configured limit (`ACCORD_MAX_BODY_BYTES`).",
    ),
    ProblemType(
        "unsupported-media-type",
        415,
        "Unsupported media type",
        "A body that is not `application/json` (HTML forms only on the survivor's pages).",
    ),
    ProblemType(
        "rule-violation",
        422,
        "The request breaks one or more rules",
        "Valid JSON that breaks one or more rules; `errors` lists each one (`path` and "
        "`message`, never the value sent). Nothing was stored.",
    ),
    ProblemType(
        "envelope-rejected",
        422,
        "The envelope breaks one or more rules",
        "The envelope breaks the format's rules (docs/envelope.md); each `errors` item has "
        "a `code`. Nothing was stored.",
    ),
    ProblemType(
        "envelope-replayed",
        422,
        "This envelope has already been accepted",
        "The same envelope is never accepted twice: seal a new one.",
    ),
    ProblemType(
        "policy-refused",
        422,
        "Policy would not release one or more fields",
        "Policy would not release one or more fields of the envelope; each `errors` item "
        "names the `field`, its `category`, the `reasons` and the deciding `policies`.",
    ),
    ProblemType(
        "headers-too-large",
        431,
        "Request header fields too large",
        "Too many header fields, or one that is too large.",
    ),
    ProblemType(
        "rate-limited",
        429,
        "Too many requests",
        "A rate limit was reached (records requests, access links, failed "
        "authentications, concurrent exports); retry after `Retry-After` seconds.",
    ),
    ProblemType(
        "internal",
        500,
        "Internal error",
        "A fault in the service; the body carries only a `request_id` to quote to the "
        "operator. Nothing was released without its audit entry.",
    ),
    ProblemType(
        "unavailable",
        503,
        "Temporarily unavailable",
        "A transient fault (database unreachable, lock timeout, audit write impossible); "
        "retry after `Retry-After` seconds. A release that cannot be audited is never made.",
    ),
)

BY_SLUG: Final = {problem.slug: problem for problem in PROBLEM_TYPES}
