"""The records every layer shares: plain dataclasses, no I/O.

The store takes and returns these (never database rows); the services, the
report and the shells work with them. Faces and matches observed in media
are kept apart from the decisions made on them, so a decision can always be
made again from stored facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Box:
    """A face's bounding box in pixel coordinates of the original image.

    ``angle``: a face tilted in the picture's plane (degrees, counter-clockwise as the
    picture shows it) is the box's square turned by this much about its centre; the
    embedder turns it upright first. Not stored: only the worker that found it uses it.

    ``frontal``: False when only the face proposal network saw a face there and HOG, a
    detector of whole frontal faces, did not (a lower face covered, a head turned, or no
    face at all); stored with the face's quality, where the rules see it.
    """

    top: int
    right: int
    bottom: int
    left: int
    angle: float = 0.0
    frontal: bool = True

    def as_list(self) -> list[int]:
        return [self.top, self.right, self.bottom, self.left]

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


# -- people and what they said -------------------------------------------------------


@dataclass
class Person:
    id: int
    name: str
    public_figure: bool
    accounts: list[str]
    references: int = 0
    opted_out: bool = True  # False while the opt-out is paused (opt-in)
    # How the opt-out was checked to come from the person shown (liveness, id-document,
    # operator...), and by whom; None: unverified, so their matches go at most to review.
    verified_by: str | None = None
    # The person's own thresholds, tighter than the rules' when their references sit near
    # many strangers' faces (a "hub"; see matcher.services.calibration); None: the rules'.
    match_threshold: float | None = None
    review_threshold: float | None = None

    @property
    def verified(self) -> bool:
        return self.verified_by is not None


@dataclass(frozen=True)
class Reference:
    """One reference face of a person to store: the photo's hash and its embedding (never the photo)."""

    photo_sha256: str
    embedding: np.ndarray


@dataclass
class Consent:
    id: int
    person_id: int
    media_sha256: str | None
    uploader: str | None
    until: str | None  # last day covered, YYYY-MM-DD
    granted_at: str
    revoked_at: str | None = None

    def covers(self, person_id: int, sha256: str | None, uploader: str | None, today: str) -> bool:
        """True when this consent of the person covers this media item from this uploader today."""
        if self.revoked_at is not None or self.person_id != person_id:
            return False
        if self.media_sha256 is not None and self.media_sha256 != sha256:
            return False
        if self.uploader is not None and self.uploader != uploader:
            return False
        return self.until is None or today <= self.until

    def status(self, today: str) -> str:
        if self.revoked_at:
            return "revoked"
        return "expired" if self.until and self.until < today else "active"


# -- what a scan observed -------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """What the platform says about a file: who posted it and in what context (manifest or API)."""

    uploader: str | None = None
    context: tuple[str, ...] = ()

    @classmethod
    def of(cls, uploader: str | None = None, context=()) -> "Upload":
        return cls(uploader, tuple(sorted(context)))


@dataclass(frozen=True)
class FaceQuality:
    """How a face was seen: what decides how far its embedding can be trusted."""

    width: int  # pixels of the original
    sharpness: float  # variance of the Laplacian of the face at 150 px grey
    brightness: float  # mean grey level, 0-255
    contrast: float  # standard deviation of the grey levels
    frontal: bool = True  # HOG saw a whole frontal face there (see Box.frontal)
    lower_texture: float | None = None  # the lower face's fine texture for the upper's: near 0 when covered

    def as_dict(self) -> dict:
        return {"width": self.width, "sharpness": self.sharpness, "brightness": self.brightness,
                "contrast": self.contrast, "frontal": self.frontal, "lower_texture": self.lower_texture}


@dataclass
class ObservedFace:
    box: Box
    embedding: np.ndarray | None  # None once dropped (no-retention setting)
    frame_time: float | None = None
    quality: FaceQuality | None = None


@dataclass
class Observation:
    """What a worker saw in one file. ``file_error``: the file could not be read;
    ``media_error``: it was read but is no usable media."""

    path: str
    engine: str = ""
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    kind: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    faces: list[ObservedFace] = field(default_factory=list)
    file_error: str | None = None
    media_error: str | None = None
    seconds: dict = field(default_factory=dict)

    @property
    def error(self) -> str | None:
        return self.file_error or self.media_error


@dataclass(frozen=True)
class MatchFact:
    """One stored match of a face in a file with an enrolled person, and the file's facts around it."""

    path: str
    sha256: str
    uploader: str | None
    context: tuple[str, ...]
    scanned_in: int | None
    face_id: int
    person_id: int
    distance: float
    face_width: int | None = None  # the face's measured quality
    sharpness: float | None = None
    brightness: float | None = None
    frontal: bool = True
    lower_texture: float | None = None
    # Distance to the nearest face a reviewer ruled is not this person, among those close enough
    # to vouch for it (None: none): the same look-alike seen again.
    ruled_out_distance: float | None = None


# -- decisions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionRecord:
    """One decision per person seen in a file, made on their strongest face there (``face_id``)."""

    path: str
    person_id: int
    face_id: int
    item: str
    action: str
    rule: str
    reason: str
    policy_sha256: str
    decided_at: str


@dataclass(frozen=True)
class Review:
    """A reviewer's verdict on one item, valid while the facts it was given on (``facts_sha256``) hold."""

    path: str
    person_id: int
    verdict: str  # remove / keep / not-them (the face is not this person)
    reviewer: str
    note: str | None
    facts_sha256: str
    decided_at: str | None = None


@dataclass
class PendingReview:
    """An item waiting for a reviewer, as the queue shows it."""

    id: str
    path: str
    person: str
    distance: float
    box: list[int]
    frame_times: list[float]
    rule: str
    reason: str
    frame_time: float | None = None  # in a video: the frame of the face decided on (``box``)
    version: str = ""  # what was shown (decide.shown_version): a verdict on it is refused once it changed


# -- the report's view of stored facts --------------------------------------------------------


@dataclass(frozen=True)
class FileFacts:
    """A recorded file and its media, as the report shows them."""

    path: str
    sha256: str | None
    file_error: str | None
    media_error: str | None
    uploader: str | None
    context: tuple[str, ...]
    kind: str | None
    format: str | None
    width: int | None
    height: int | None


@dataclass(frozen=True)
class FaceFacts:
    """A face of a file, its match and the decision on its person in that file, as the report shows them."""

    face_id: int
    frame_time: float | None
    box: Box
    person_id: int | None
    person: str | None
    distance: float | None
    decided_on: int | None  # the face the person's decision in this file was made on
    action: str | None
    rule: str | None
    reason: str | None


# -- web access and the audit trail -------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    name: str
    created_at: str
    scope: str | None = None  # API keys: "names" lets the key see enrolled people's names


@dataclass(frozen=True)
class SignedIn:
    kind: str  # person / reviewer
    subject: str  # person id, or reviewer name


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    event: str
    subject: str
    old: str | None
    new: str | None
    rule: str | None
    policy_sha256: str | None
    detail: str | None
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class NewAuditEntry:
    """An entry to append: the store adds time, link and hash.

    ``about``: the person whose personal data ``detail`` holds (a note, an
    uploader, a path): the store keeps that detail encrypted with the person's
    own key, which erasure destroys, so the chain still verifies and the
    detail can no longer be read.
    """

    actor: str
    event: str
    subject: str
    old: str | None = None
    new: str | None = None
    rule: str | None = None
    policy_sha256: str | None = None
    detail: str | None = None
    about: int | None = None
