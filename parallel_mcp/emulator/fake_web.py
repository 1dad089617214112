"""Invented web sources for emulated runs.

Every URL is either on a reserved TLD (`.example`, then `.test`, `.invalid` when those are excluded)
so nobody mistakes it for research, or on a domain the request's `source_policy.include_domains`
asked for. Nothing here touches the network.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from parallel_mcp.models import Citation, SourcePolicy

# Reserved for documentation and testing (RFC 2606 / RFC 6761), tried in this order.
RESERVED_TLDS: tuple[str, ...] = (".example", ".test", ".invalid")

_HOST_KINDS: tuple[str, ...] = (
    "journal",
    "review",
    "institute",
    "data",
    "news",
    "wiki",
    "insights",
    "observatory",
    "registry",
    "times",
    "monitor",
    "archive",
)
_PATHS: tuple[str, ...] = ("articles", "reports", "data", "news", "analysis", "briefs", "wiki", "papers")
_TITLE_KINDS: tuple[str, ...] = (
    "An overview",
    "Key figures",
    "What changed this year",
    "A field guide",
    "Market notes",
    "Frequently asked questions",
    "Annual report",
    "Case study",
    "Expert roundtable",
    "Timeline and background",
)
_EXCERPT_TEMPLATES: tuple[str, ...] = (
    "Emulated excerpt: the {about} of {subject} is described here in invented terms.",
    "This emulated page notes that {subject} shows steady activity in {about}.",
    "According to this invented source, {about} for {subject} remains an open question.",
    "Emulated summary: analysts quoted here discuss {about} in the context of {subject}.",
    "An invented data table lists figures on {about} related to {subject}.",
)
_LABEL_CHARS = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True, slots=True)
class FakeSource:
    """One invented web page."""

    url: str
    title: str


def _label(word: str) -> str:
    """A DNS label made from a topic word (lowercase letters, digits and hyphens)."""
    label = _LABEL_CHARS.sub("", word.lower()).strip("-")
    return label[:40] or "research"


def _normalise_entry(entry: str) -> str:
    """A policy entry without wildcards, `www.` or trailing slashes; lowercase host."""
    entry = entry.strip().removeprefix("*.").removeprefix("*").removeprefix("www.").rstrip("/")
    host, slash, path = entry.partition("/")
    return host.lower() + slash + path


def is_excluded(url_host: str, url_path: str, entries: Sequence[str]) -> bool:
    """Whether a host/path matches any policy entry (apex domain, extension or domain/path prefix).

    Args:
        url_host: the host of the URL, lowercase.
        url_path: the path of the URL, starting with `/`.
        entries: `exclude_domains` (or `include_domains`) entries as the API accepts them.

    Returns:
        True when one entry covers the URL, subdomains included.
    """
    for raw in entries:
        entry = _normalise_entry(raw)
        host, _, path = entry.partition("/")
        if not host:
            continue
        if host.startswith("."):
            host_matches = url_host.endswith(host)
        else:
            host_matches = url_host == host or url_host.endswith("." + host)
        if host_matches and (not path or url_path == "/" + path or url_path.startswith("/" + path + "/")):
            return True
    return False


def _url_excluded(url: str, entries: Sequence[str]) -> bool:
    host, _, path = url.removeprefix("https://").partition("/")
    return is_excluded(host, "/" + path, entries)


class FakeWeb:
    """A deterministic pool of invented sources about one topic.

    Args:
        rng: the run's random source; the pool depends only on its state.
        topic_words: words from the request, used in hosts, paths and titles.
        subject: a short description of the request, used in excerpts.
        source_policy: the request's policy; include/exclude domains are honoured.
        size: how many distinct pages to invent.
    """

    def __init__(
        self,
        rng: random.Random,
        topic_words: Sequence[str],
        subject: str,
        source_policy: SourcePolicy | None,
        size: int,
    ) -> None:
        self._subject = subject
        words = [_label(w) for w in topic_words] or ["research"]
        slug = "-".join(words[:3])
        topic_title = " ".join(w.capitalize() for w in topic_words[:3]) or "Research"
        bases = self._bases(words, source_policy)
        # exclude_domains may name a host/path prefix, so every URL is checked, not just its host.
        exclude = self._exclusions(source_policy)
        sources: list[FakeSource] = []
        for index in range(max(size, 1)):
            base = bases[index % len(bases)]
            year = rng.randint(2019, 2025)
            sections = rng.sample(_PATHS, len(_PATHS))
            urls = (f"{base}/{section}/{year}/{slug}-{index + 1}" for section in sections)
            url = next((u for u in urls if not _url_excluded(u, exclude)), None)
            if url is None:
                continue
            title = f"{topic_title}: {rng.choice(_TITLE_KINDS)} ({index + 1})"
            sources.append(FakeSource(url=url, title=title))
        if not sources:
            # Only possible with a perverse exclude list; an invented source beats an empty basis.
            sources.append(FakeSource(url=f"{bases[0]}/emulated/{slug}", title=f"{topic_title}: An overview"))
        self.sources: tuple[FakeSource, ...] = tuple(sources)

    @staticmethod
    def _exclusions(policy: SourcePolicy | None) -> list[str]:
        """The exclude entries in force (the API ignores them when include_domains is set)."""
        if policy is None or policy.include_domains:
            return []
        return list(policy.exclude_domains or [])

    @staticmethod
    def _bases(words: Sequence[str], policy: SourcePolicy | None) -> list[str]:
        """URL prefixes (scheme, host and optional path) the pool may use."""
        include = [e for e in (policy.include_domains or []) if _normalise_entry(e)] if policy else []
        if include:
            bases: list[str] = []
            for raw in include:
                entry = _normalise_entry(raw)
                host, slash, path = entry.partition("/")
                # A bare extension such as `.gov` needs a name in front of it.
                if host.startswith("."):
                    host = f"emulated-{words[0]}{host}"
                bases.append(f"https://{host}{slash}{path}")
            return bases
        exclude = FakeWeb._exclusions(policy)
        candidates = [f"{word}-{kind}" for kind in _HOST_KINDS for word in words[:2]]
        for tld in RESERVED_TLDS:
            hosts = [label + tld for label in candidates]
            kept = [h for h in hosts if not is_excluded(h, "/", exclude)]
            if kept:
                return [f"https://{h}" for h in kept]
        # Every reserved TLD is excluded: nothing invented can honour that policy, so ignore it.
        return [f"https://{label}{RESERVED_TLDS[0]}" for label in candidates]

    def citations(self, rng: random.Random, count: int, about: str) -> list[Citation]:
        """Pick `count` distinct sources (fewer if the pool is smaller) as citations.

        Args:
            rng: the run's random source.
            count: how many citations to return.
            about: what the citation supports, quoted in its excerpt.

        Returns:
            Citations with a URL, a title and one or two excerpts.
        """
        picked = rng.sample(self.sources, min(count, len(self.sources)))
        return [
            Citation(
                url=source.url,
                title=source.title,
                excerpts=[
                    template.format(about=about, subject=self._subject)
                    for template in rng.sample(_EXCERPT_TEMPLATES, rng.randint(1, 2))
                ],
            )
            for source in picked
        ]
