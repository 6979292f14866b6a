"""Paged listings of a competition's submissions and public leaderboard, through KaggleClient.

`KaggleApi.competition_submissions` and `competition_leaderboard_view` drop the next-page token (the
latter prints it to stdout), so long lists are read with the SDK request the client itself builds,
one page at a time, inside KaggleClient's error mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kompete.kernel.client import KaggleClient, _status_name


@dataclass(frozen=True)
class SubmissionRow:
    ref: int
    status: str  # PENDING, COMPLETE, ERROR
    public_score: str  # '' while pending
    private_score: str
    description: str
    file_name: str
    date: str
    error: str
    team_name: str


@dataclass(frozen=True)
class LeaderboardEntry:
    team_id: int | None
    team_name: str
    score: str
    date: str


def _date(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")


def submissions_page(client: KaggleClient, competition: str, page_token: str = "",
                     page_size: int = 50) -> tuple[list[SubmissionRow], str]:
    """One page of the user's submissions, newest first, and the token of the next page ('' at the end)."""
    from kagglesdk.competitions.types.competition_api_service import ApiListSubmissionsRequest

    req = ApiListSubmissionsRequest()
    req.competition_name, req.page_size = competition, page_size
    if page_token:
        req.page_token = page_token

    def call() -> Any:
        with client._api.build_kaggle_client() as kc:
            return kc.competitions.competition_api_client.list_submissions(req)

    resp = client._call(f"listing submissions to {competition}", call)
    rows = [SubmissionRow(ref=int(s.ref), status=_status_name(s.status), public_score=s.public_score or "",
                          private_score=s.private_score or "", description=s.description or "",
                          file_name=s.file_name or "", date=_date(s.date), error=s.error_description or "",
                          team_name=s.team_name or "")
            for s in resp.submissions or [] if s is not None]
    return rows, resp.next_page_token or ""


def leaderboard_page(client: KaggleClient, competition: str, page_token: str = "",
                     page_size: int = 200) -> tuple[list[LeaderboardEntry], str]:
    """One page of the public leaderboard in rank order, and the token of the next page ('' at the end)."""
    from kagglesdk.competitions.types.competition_api_service import ApiGetLeaderboardRequest

    req = ApiGetLeaderboardRequest()
    req.competition_name, req.page_size = competition, page_size
    if page_token:
        req.page_token = page_token

    def call() -> Any:
        with client._api.build_kaggle_client() as kc:
            return kc.competitions.competition_api_client.get_leaderboard(req)

    resp = client._call(f"reading the leaderboard of {competition}", call)
    rows = [LeaderboardEntry(team_id=int(e.team_id) if e.team_id else None, team_name=e.team_name or "",
                             score=e.score or "", date=_date(e.submission_date))
            for e in resp.submissions or [] if e is not None]
    return rows, resp.next_page_token or ""
