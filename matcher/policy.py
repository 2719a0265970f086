"""The shared policy rules: one TOML file turns the facts about a matched face into a decision.

Rules are an ordered list; the first whose conditions all hold decides. Every
command reads the same file, and every decision records the rule that fired
and a readable reason. A malformed file is refused with its line and problem.
"""

from __future__ import annotations

import hashlib
import re
import string
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ACTIONS = ("allow", "review", "remove")
SEVERITY = {"none": 0, "allow": 1, "review": 2, "remove": 3}
STRENGTHS = ("confident", "possible")

# Conditions a rule may test, each with the check of its value in the file and
# the test it makes against the facts.
_BOOL_FACTS = ("consent", "self_posted", "public_figure", "opted_out", "flood", "verified", "look_alike")
REASON_FIELDS = {"person", "distance", "match", "uploader", "context", "rule", "flood_limit", "face_width",
                 "sharpness", "brightness", "band"}
# What a band of [[thresholds.bands]] may be limited by (besides ``frontal``): a face under every limit given.
BAND_LIMITS = ("width_below", "sharpness_below", "brightness_below", "lower_texture_below")
# Conditions on the measured quality of the face decided on: (fact, test).
_QUALITY_CONDITIONS = {
    "face_width_at_least": ("face_width", lambda fact, limit: fact >= limit),
    "face_width_below": ("face_width", lambda fact, limit: fact < limit),
    "sharpness_at_least": ("sharpness", lambda fact, limit: fact >= limit),
    "sharpness_below": ("sharpness", lambda fact, limit: fact < limit),
    "brightness_at_least": ("brightness", lambda fact, limit: fact >= limit),
    "brightness_below": ("brightness", lambda fact, limit: fact < limit),
}


class PolicyError(ValueError):
    """A rules file that cannot be used; the message names the file, line and problem."""


@dataclass(frozen=True)
class Facts:
    """What is known about one matched face of one media item."""

    person: str
    distance: float
    match: str  # "confident" or "possible"
    consent: bool = False
    self_posted: bool = False
    public_figure: bool = False
    opted_out: bool = True  # False while the person has paused their opt-out (opt-in)
    # The opt-out was checked to come from the person shown (a liveness video, an ID
    # seen by an operator...); unverified, anyone could have enrolled them: review at most.
    verified: bool = False
    flood: bool = False  # the person matched more media in one scan than the flood guard allows
    flood_limit: int | None = None
    uploader: str | None = None
    context: frozenset[str] = frozenset()
    face_width: int | None = None  # the face decided on: its width in pixels of the original
    sharpness: float | None = None  # its sharpness and brightness (None for faces stored before they were measured)
    brightness: float | None = None
    band: str | None = None  # the quality band that set the thresholds (None: the general ones)
    # The face is nearer a face a reviewer ruled is not this person than it is to the person, and
    # within thresholds.look_alike of it (and of what both faces' bands trust): that look-alike again.
    look_alike: bool = False


@dataclass(frozen=True)
class Limits:
    """The distances a face must be within: a confident match, a possible one."""

    match: float
    review: float
    band: str | None = None


@dataclass(frozen=True)
class Band:
    """Faces smaller (``width_below``), blurrier (``sharpness_below``), darker
    (``brightness_below``) than given, with less texture in the lower face (``lower_texture_below``:
    covered), or not seen frontally (``frontal = false``), embed less reliably: their own
    thresholds, measured per band (models/dlib_resnet_v1.md)."""

    id: str
    match: float
    review: float
    width_below: int | None = None
    sharpness_below: float | None = None
    brightness_below: float | None = None
    frontal: bool | None = None
    lower_texture_below: float | None = None

    def holds(self, face_width: int | None, sharpness: float | None, brightness: float | None = None,
              frontal: bool = True, lower_texture: float | None = None) -> bool:
        """True when the face is below every limit the band gives (an unknown measure is never
        below) and seen frontally or not as the band says."""
        if self.frontal is not None and frontal != self.frontal:
            return False
        for limit, value in ((self.width_below, face_width), (self.sharpness_below, sharpness),
                             (self.brightness_below, brightness), (self.lower_texture_below, lower_texture)):
            if limit is not None and (value is None or value >= limit):
                return False
        return True


@dataclass(frozen=True)
class Decision:
    action: str
    rule: str
    reason: str


@dataclass(frozen=True)
class Rule:
    id: str
    when: dict
    action: str
    reason: str
    line: int

    def holds(self, facts: Facts) -> bool:
        for key, expected in self.when.items():
            if key in _BOOL_FACTS or key == "match":
                if getattr(facts, key) != expected:
                    return False
            elif key == "context_any":
                if not facts.context & set(expected):
                    return False
            elif key == "uploader_in":
                if facts.uploader not in expected:
                    return False
            elif key == "distance_at_most":
                if facts.distance > expected:
                    return False
            elif key == "distance_above":
                if facts.distance <= expected:
                    return False
            elif key == "band_in":
                if facts.band not in expected:
                    return False
            elif key in _QUALITY_CONDITIONS:
                name, test = _QUALITY_CONDITIONS[key]
                value = getattr(facts, name)
                if value is None or not test(value, expected):  # unknown quality never satisfies a condition on it
                    return False
        return True


@dataclass(frozen=True)
class Policy:
    path: str
    sha256: str
    match: float
    review: float
    rules: tuple[Rule, ...] = field(default=())
    # [retention] keep_unmatched_embeddings: whether faces that matched nobody keep their embedding.
    keep_unmatched_embeddings: bool = True
    # [flood_guard] max_media_per_person_per_scan (None: no guard).
    flood_limit: int | None = None
    bands: tuple[Band, ...] = ()
    # [hubs] measure_after_scans: scans measure each person's own thresholds when the background grew.
    hubs_after_scans: bool = True
    # thresholds.look_alike: how near a face ruled "not them" a face must be to be that look-alike (None: never).
    look_alike: float | None = None

    def limits(self, face_width: int | None = None, sharpness: float | None = None, brightness: float | None = None,
               frontal: bool = True, lower_texture: float | None = None, person: Limits | None = None) -> Limits:
        """The thresholds for a face of this quality, and for a person whose own thresholds are
        tighter (hubs: see matcher.services.calibration): the tightest of the general ones and of
        every band the face is in (a small face that is also dark gets the stricter of the two);
        ``band`` names the band whose match set it (None: the general one)."""
        holding = [b for b in self.bands if b.holds(face_width, sharpness, brightness, frontal, lower_texture)]
        # Ties on match go to the tighter review (a face not seen frontally that is also tiny is
        # named not-frontal, whatever the order of the file), then to the first of equals.
        tightest = min(holding, key=lambda b: (b.match, b.review), default=None)
        match = min([self.match, *(b.match for b in holding)])
        review = min([self.review, *(b.review for b in holding)])
        band = tightest.id if tightest else None
        if person is not None:
            match, review = min(match, person.match), min(review, person.review)
        return Limits(match, review, band)

    def strength(self, distance: float, limits: Limits | None = None) -> str | None:
        """"confident", "possible", or None when the distance is no match at all."""
        limits = limits or Limits(self.match, self.review)
        if limits.match > 0 and distance <= limits.match:  # match 0: never confident, even at distance 0
            return "confident"
        if distance <= limits.review:
            return "possible"
        return None

    def look_alike_limit(self, band_match: float) -> float:
        """How near a face ruled "not them" a face must be to be that look-alike: thresholds.look_alike,
        never beyond the match its quality band trusts (a degraded face is a less sure same-person
        test; 0, never, where the band trusts no match). ``band_match``: the band's, not a person's."""
        return 0.0 if self.look_alike is None else min(self.look_alike, band_match)

    def is_look_alike(self, distance: float, ruled_out_distance: float | None, band_match: float) -> bool:
        """Whether a face at ``distance`` from the person and ``ruled_out_distance`` from the nearest
        face ruled not them is that look-alike: within the look-alike limit, and nearer it than the person."""
        limit = self.look_alike_limit(band_match)
        return limit > 0 and ruled_out_distance is not None and ruled_out_distance <= limit \
            and ruled_out_distance < distance

    def decide(self, facts: Facts) -> Decision:
        for rule in self.rules:
            if rule.holds(facts):
                return Decision(rule.action, rule.id, _reason(rule, facts))
        # Validation guarantees a final catch-all rule; this is only reached
        # if the rules were built by hand without one.
        return Decision("review", "no-rule", "no rule matched these facts; a person should look")


def _reason(rule: Rule, facts: Facts) -> str:
    values = {
        "person": facts.person,
        "distance": facts.distance,
        "match": facts.match,
        "uploader": facts.uploader or "unknown uploader",
        "context": ", ".join(sorted(facts.context)) or "no context",
        "rule": rule.id,
        "flood_limit": facts.flood_limit,
        "face_width": facts.face_width,
        "sharpness": facts.sharpness,
        "brightness": facts.brightness,
        "band": facts.band or "general",
    }
    return rule.reason.format(**values)


def default_policy_path() -> Path:
    """The rules shipped in ``data/``: beside the package in a checkout, else in the install's share/."""
    checkout = Path(__file__).resolve().parent.parent / "data" / "policy.toml"
    if checkout.is_file():
        return checkout
    return Path(sys.prefix) / "share" / "consent-matcher" / "policy.toml"


def load_policy(path: str | Path | None = None) -> Policy:
    path = Path(path) if path else default_policy_path()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the rules file: {exc.strerror or exc}") from None
    return parse_policy(raw, str(path))


def parse_policy(raw: bytes, path: str = "<rules>") -> Policy:
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)".
        found = re.search(r"at line (\d+)", str(exc))
        line = found.group(1) if found else "?"
        raise PolicyError(f"{path}:{line}: invalid TOML: {exc}") from None
    return _validate(data, text.splitlines(), path, hashlib.sha256(raw).hexdigest())


def _validate(data: dict, lines: list[str], path: str, digest: str) -> Policy:
    def fail(line: int | None, problem: str) -> PolicyError:
        return PolicyError(f"{path}:{line or '?'}: {problem}")

    def line_of(pattern: str, start: int = 0, end: int | None = None) -> int | None:
        for number in range(start, len(lines) if end is None else end):
            if re.search(pattern, lines[number]):
                return number + 1
        return None

    unknown = set(data) - {"version", "thresholds", "rules", "retention", "flood_guard", "hubs"}
    if unknown:
        key = sorted(unknown)[0]
        raise fail(line_of(rf"^\s*\[?\s*{re.escape(key)}\b"), f"unknown top-level key {key!r}")

    thresholds = data.get("thresholds")
    if not isinstance(thresholds, dict):
        raise fail(None, "missing [thresholds] table with 'match' and 'review'")
    values = {}
    for key in ("match", "review"):
        value = thresholds.get(key)
        line = line_of(rf"^\s*{key}\s*=")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise fail(line, f"thresholds.{key} must be a number (a face distance)")
        if not 0.0 < value < 2.0:
            raise fail(line, f"thresholds.{key} = {value} is outside 0..2, the range of face distances")
        values[key] = float(value)
    if values["match"] > values["review"]:
        raise fail(line_of(r"^\s*match\s*="), "thresholds.match must not be above thresholds.review")
    look_alike = thresholds.get("look_alike")
    if look_alike is not None and (not isinstance(look_alike, (int, float)) or isinstance(look_alike, bool)
                                   or not 0.0 < look_alike < 2.0):
        raise fail(line_of(r"^\s*look_alike\s*="), "thresholds.look_alike must be a face distance, above 0 and "
                                                       "under 2")
    if look_alike is not None and look_alike > values["match"]:
        # A same-person test between two faces: no looser than a confident match with the person.
        raise fail(line_of(r"^\s*look_alike\s*="), "thresholds.look_alike must not be above thresholds.match")

    rule_tables = data.get("rules")
    if not isinstance(rule_tables, list) or not rule_tables:
        raise fail(None, "no [[rules]]: the file must list at least one rule")
    headers = [n for n, text in enumerate(lines) if re.match(r"^\s*\[\[\s*rules\s*\]\]", text)]
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, table in enumerate(rule_tables):
        start = headers[index] if index < len(headers) else 0
        end = headers[index + 1] if index + 1 < len(headers) else len(lines)
        header_line = start + 1 if index < len(headers) else None

        def key_line(key: str) -> int | None:
            return line_of(rf"\b{re.escape(key)}\s*=", start, end) or header_line

        unknown = set(table) - {"id", "when", "action", "reason"}
        if unknown:
            key = sorted(unknown)[0]
            raise fail(key_line(key), f"rule {index + 1}: unknown key {key!r} (expected id, when, action, reason)")
        rule_id = table.get("id")
        if not isinstance(rule_id, str) or not rule_id:
            raise fail(key_line("id") if "id" in table else header_line, f"rule {index + 1}: needs an 'id' string")
        if rule_id in seen:
            raise fail(key_line("id"), f"rule id {rule_id!r} is used twice")
        seen.add(rule_id)
        action = table.get("action")
        if action not in ACTIONS:
            raise fail(key_line("action"), f"rule {rule_id!r}: action must be one of {', '.join(ACTIONS)}, not {action!r}")
        reason = table.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise fail(key_line("reason") if "reason" in table else header_line, f"rule {rule_id!r}: needs a 'reason' string")
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(reason) if name is not None}
        except ValueError as exc:
            raise fail(key_line("reason"), f"rule {rule_id!r}: bad reason template: {exc}") from None
        if names - REASON_FIELDS:
            bad = sorted(names - REASON_FIELDS)[0]
            raise fail(
                key_line("reason"),
                f"rule {rule_id!r}: reason uses {{{bad}}}; known fields: {', '.join(sorted(REASON_FIELDS))}",
            )
        when = table.get("when", {})
        if not isinstance(when, dict):
            raise fail(key_line("when"), f"rule {rule_id!r}: 'when' must be a table of conditions")
        for key, value in when.items():
            problem = _condition_problem(key, value)
            if problem:
                raise fail(key_line(key), f"rule {rule_id!r}: {problem}")
        if action == "remove" and when.get("match") != "confident":
            # Uncertain matches go to a person, never straight to removal.
            raise fail(
                key_line("action"),
                f"rule {rule_id!r}: a remove rule must require match = \"confident\"",
            )
        if action == "remove" and when.get("verified") is not True:
            # An opt-out nobody checked could have been made by anyone, of anyone: a person looks first.
            raise fail(
                key_line("action"),
                f"rule {rule_id!r}: a remove rule must require verified = true (an unverified opt-out "
                "goes to review at most)",
            )
        rules.append(Rule(rule_id, dict(when), action, reason, header_line or 0))

    if not _covers_every_match(rules):
        raise fail(
            rules[-1].line,
            "no rule applies to some matched faces: end the list with rules covering "
            "match = \"confident\" and match = \"possible\", verified or not (or one without conditions)",
        )
    bands = _bands(thresholds.get("bands", []), values, line_of, fail)
    keep = _table(data, "retention", {"keep_unmatched_embeddings": bool}, line_of, fail)
    guard = _table(data, "flood_guard", {"max_media_per_person_per_scan": int}, line_of, fail)
    hubs = _table(data, "hubs", {"measure_after_scans": bool}, line_of, fail)
    limit = guard.get("max_media_per_person_per_scan")
    if limit is not None and limit < 1:
        raise fail(line_of(r"^\s*max_media_per_person_per_scan\s*="), "max_media_per_person_per_scan must be at least 1")
    return Policy(path, digest, values["match"], values["review"], tuple(rules),
                  keep_unmatched_embeddings=keep.get("keep_unmatched_embeddings", True), flood_limit=limit,
                  bands=bands, hubs_after_scans=hubs.get("measure_after_scans", True),
                  look_alike=None if look_alike is None else float(look_alike))


def _bands(tables, general: dict, line_of, fail) -> tuple[Band, ...]:
    """[[thresholds.bands]]: each an id, the faces it is for, and its match and review thresholds."""
    if not isinstance(tables, list):
        raise fail(line_of(r"^\s*\[\[?\s*thresholds\.bands"), "thresholds.bands must be a list of [[thresholds.bands]]")
    bands, seen = [], set()
    for table in tables:
        band_id = table.get("id") if isinstance(table, dict) else None
        line = line_of(rf"^\s*id\s*=\s*\"{re.escape(str(band_id))}\"") if band_id else None
        if not isinstance(band_id, str) or not band_id or band_id in seen:
            raise fail(line, "each [[thresholds.bands]] needs its own 'id' string")
        seen.add(band_id)
        criteria = BAND_LIMITS
        unknown = set(table) - {"id", "match", "review", "frontal", *criteria}
        if unknown:
            raise fail(line, f"band {band_id!r}: unknown key {sorted(unknown)[0]!r}")
        if not any(key in table for key in (*criteria, "frontal")):
            raise fail(line, f"band {band_id!r}: say which faces it is for ({', '.join(criteria)}, frontal)")
        if "frontal" in table and not isinstance(table["frontal"], bool):
            raise fail(line, f"band {band_id!r}: frontal must be true or false")
        numbers = {}
        for key in ("match", "review", *criteria):
            value = table.get(key)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
                raise fail(line, f"band {band_id!r}: {key} must be a number, 0 or more")
            numbers[key] = value
        if numbers["match"] is None or numbers["review"] is None:
            raise fail(line, f"band {band_id!r}: needs match and review (match = 0: never a confident match)")
        if (numbers["match"] > numbers["review"] or numbers["review"] > general["review"]
                or numbers["match"] > general["match"]):
            raise fail(line, f"band {band_id!r}: needs match <= review, match <= thresholds.match and "
                             "review <= thresholds.review (a band only tightens)")
        bands.append(Band(band_id, float(numbers["match"]), float(numbers["review"]), numbers["width_below"],
                          numbers["sharpness_below"], numbers["brightness_below"], table.get("frontal"),
                          numbers["lower_texture_below"]))
    return tuple(bands)


def _table(data: dict, name: str, keys: dict[str, type], line_of, fail) -> dict:
    """An optional settings table whose keys must have the given types."""
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise fail(line_of(rf"^\s*{name}\b"), f"{name} must be a table: [{name}]")
    for key, value in table.items():
        if key not in keys:
            raise fail(line_of(rf"^\s*{re.escape(key)}\s*="), f"[{name}]: unknown key {key!r} (known: {', '.join(keys)})")
        if not isinstance(value, keys[key]) or (keys[key] is int and isinstance(value, bool)):
            raise fail(line_of(rf"^\s*{re.escape(key)}\s*="), f"[{name}] {key} must be {keys[key].__name__}")
    return table


def _condition_problem(key: str, value) -> str | None:
    if key in _BOOL_FACTS:
        return None if isinstance(value, bool) else f"{key} must be true or false"
    if key == "match":
        return None if value in STRENGTHS else f"match must be one of {', '.join(STRENGTHS)}"
    if key in ("context_any", "uploader_in"):
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return None
        return f"{key} must be a non-empty list of strings"
    if key in ("distance_at_most", "distance_above", *_QUALITY_CONDITIONS):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None
        return f"{key} must be a number"
    if key == "band_in":
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return None
        return f"{key} must be a non-empty list of band ids"
    known = sorted((*_BOOL_FACTS, "match", "context_any", "uploader_in", "distance_at_most", "distance_above",
                    "band_in", *_QUALITY_CONDITIONS))
    return f"unknown condition {key!r}; known: {', '.join(known)}"


def _covers_every_match(rules: list[Rule]) -> bool:
    """True when, for each match strength, verified or not, some rule holds whatever the other facts."""
    for strength in STRENGTHS:
        for verified in (True, False):
            situation = {"match": strength, "verified": verified}
            if not any(all(key in situation and value == situation[key] for key, value in rule.when.items())
                       for rule in rules):
                return False
    return True
