"""Every badge colour of the stylesheet keeps its text at WCAG AA contrast (4.5:1) or better."""

import re
from pathlib import Path

from django.conf import settings

from instances.status import FAMILY_COLORS, STATUS_FAMILIES, Family, Status

CSS = Path(settings.BASE_DIR) / "static" / "css" / "inventiv.css"
AA_NORMAL_TEXT = 4.5
RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
DECLARATION = re.compile(r"(?<![\w-])(background|color)\s*:\s*(#[0-9a-fA-F]{3,6})")
BADGE_CLASS = re.compile(r"^\.badge\.([\w-]+)$")


def luminance(hex_colour: str) -> float:
    digits = hex_colour.lstrip("#")
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    channels = [int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def badge_colours() -> dict[str, dict[str, str]]:
    """{badge class: {"background", "color"}} as the cascade leaves them (later rules win)."""
    text = re.sub(r"/\*.*?\*/", "", CSS.read_text(), flags=re.S)
    base, badges = {}, {}
    for selectors, body in RULE.findall(text):
        declarations = {name: value for name, value in DECLARATION.findall(body)}
        for selector in (s.strip() for s in selectors.split(",")):
            if selector == ".badge":
                base.update(declarations)
            elif match := BADGE_CLASS.match(selector):
                badges.setdefault(match.group(1), {}).update(declarations)
    return {name: {**base, **colours} for name, colours in badges.items()}


def test_every_badge_meets_wcag_aa_contrast():
    badges = badge_colours()
    assert {"green", "blue", "red", "gray", "status-live", "status-ended"} <= set(badges)
    low = {name: round(contrast(c["background"], c["color"]), 2) for name, c in badges.items()
           if contrast(c["background"], c["color"]) < AA_NORMAL_TEXT}
    assert low == {}


def test_each_status_family_has_one_badge_class_and_one_colour():
    badges = badge_colours()
    for family in Family:
        assert f"status-{family}" in badges
        assert badges[f"status-{family}"] == badges[FAMILY_COLORS[family]]
    assert len({FAMILY_COLORS[family] for family in Family}) == len(Family)
    assert set(STATUS_FAMILIES) == set(Status.values)
