"""Customer-service routes under /api/v1/support: knowledge base and phrases, cases, SLA, follow-ups, surveys,
contact preferences and campaigns.

customer_service (and admin) write; any staff reads the knowledge base and phrases; dispatchers and finance read
cases (they are asked to help with them).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backoffice.support import campaigns, care, kb, service
from backoffice.support import models as m
from fleetcore.api.deps import ALL_ROLES, ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES
from fleetcore.jsonable import to_json

router = APIRouter(prefix="/api/v1/support", tags=["support"], responses=ERROR_RESPONSES)
Agent = Annotated[dict, Depends(require_roles("customer_service"))]
CaseReader = Annotated[dict, Depends(require_roles("customer_service", "dispatcher", "finance"))]
Staff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]
Admin = Annotated[dict, Depends(require_roles("admin"))]

# ---- knowledge base ------------------------------------------------------------------------------------------


@router.get("/kb/categories", response_model=list[m.CategoryOut])
def kb_categories(user: Staff, conn: ConnDep) -> list[dict]:
    """Knowledge-base categories with their English and Chinese names."""
    return kb.list_categories(conn)


@router.get("/kb/search", response_model=list[m.ArticleOut])
def kb_search(
    user: Staff,
    conn: ConnDep,
    q: Annotated[str, Query(min_length=1, max_length=300)],
    locale: m.Locale | None = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[dict]:
    """Published articles ranked for a question in English or Chinese, best first."""
    return kb.search_articles(conn, q=q, locale=locale, category=category, limit=limit)


@router.get("/kb/articles", response_model=list[m.ArticleOut])
def kb_list(
    user: Staff,
    conn: ConnDep,
    category: Annotated[str | None, Query(max_length=32)] = None,
    locale: m.Locale | None = None,
    status: Annotated[str | None, Query(pattern="^(draft|published|archived)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict]:
    """Articles, most used first."""
    return kb.list_(conn, category=category, locale=locale, status=status, limit=limit)


@router.post("/kb/articles", status_code=201, response_model=m.ArticleOut)
def kb_create(body: m.ArticleIn, user: Agent, conn: ConnDep) -> dict:
    """A new article (version 1)."""
    return kb.create(conn, data=body.model_dump(), actor=user)


@router.get("/kb/articles/{article_id}", response_model=m.ArticleOut)
def kb_get(article_id: int, user: Staff, conn: ConnDep) -> dict:
    """One article."""
    return kb.get_or_raise(conn, article_id=article_id)


@router.patch("/kb/articles/{article_id}", response_model=m.ArticleOut)
def kb_update(article_id: int, body: m.ArticlePatch, user: Agent, conn: ConnDep) -> dict:
    """Edit an article; a changed title or body is a new version."""
    return kb.update(conn, article_id=article_id, changes=body.model_dump(exclude_unset=True), actor=user)


@router.get("/kb/articles/{article_id}/versions", response_model=list[m.ArticleVersionOut])
def kb_versions(article_id: int, user: Staff, conn: ConnDep) -> list[dict]:
    """Every version of an article, newest first."""
    return kb.versions(conn, article_id=article_id)


@router.post("/kb/articles/{article_id}/use", response_model=m.ArticleOut)
def kb_use(article_id: int, user: Agent, conn: ConnDep) -> dict:
    """Count one use of the article in answering a customer."""
    return kb.record_use(conn, article_id=article_id, actor=user)


@router.get("/phrases", response_model=list[m.PhraseOut])
def phrases(
    user: Staff, conn: ConnDep, locale: m.Locale | None = None, kind: m.PhraseKind | None = None
) -> list[dict]:
    """Standard service phrases (greeting, apology, closing, ...) per locale."""
    return kb.list_phrases(conn, locale=locale, kind=kind)


@router.post("/phrases", status_code=201, response_model=m.PhraseOut)
def add_phrase(body: m.PhraseIn, user: Agent, conn: ConnDep) -> dict:
    """Add a standard phrase."""
    return kb.create_phrase(conn, kind=body.kind, locale=body.locale, text=body.text, actor=user)


@router.delete("/phrases/{phrase_id}", status_code=204)
def delete_phrase(phrase_id: int, user: Agent, conn: ConnDep) -> None:
    """Remove a standard phrase."""
    kb.delete_phrase(conn, phrase_id=phrase_id, actor=user)


# ---- cases ---------------------------------------------------------------------------------------------------


@router.post("/cases", status_code=201, response_model=m.CaseDetailOut)
def create_case(body: m.CaseIn, user: Agent, conn: ConnDep) -> dict:
    """Intake of an enquiry, complex question or complaint; evidence is attached when an order is named."""
    c = service.create(conn, data=body.model_dump(), actor=user)
    return service.detail(conn, case_id=c["id"])


@router.get("/cases", response_model=list[m.CaseOut])
def list_cases(
    user: CaseReader,
    conn: ConnDep,
    status: m.CaseStatus | None = None,
    kind: m.CaseKind | None = None,
    customer_id: Annotated[int | None, Query(gt=0)] = None,
    assignee: Annotated[str | None, Query(max_length=64)] = None,
    overdue: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict]:
    """Cases, newest first (`overdue`: open cases past a due time now)."""
    return service.list_(
        conn, status=status, kind=kind, customer_id=customer_id, assignee=assignee,
        overdue_at=dt.datetime.now(dt.UTC) if overdue else None, limit=limit, offset=offset,
    )  # fmt: skip


@router.get("/cases/{case_id}", response_model=m.CaseDetailOut)
def get_case(case_id: int, user: CaseReader, conn: ConnDep) -> dict:
    """A case with its evidence and full history."""
    return service.detail(conn, case_id=case_id)


@router.post("/cases/{case_id}/evidence", response_model=m.CaseDetailOut)
def refresh_evidence(case_id: int, user: Agent, conn: ConnDep) -> dict:
    """Collect the order's evidence again."""
    return service.refresh_evidence(conn, case_id=case_id, actor=user)


@router.post("/cases/{case_id}/assign", response_model=m.CaseOut)
def assign_case(case_id: int, body: m.AssignIn, user: Agent, conn: ConnDep) -> dict:
    """Hand the case to a person and/or a department."""
    return service.assign(
        conn, case_id=case_id, assignee=body.assignee, department=body.department, actor=user
    )


@router.post("/cases/{case_id}/notes", response_model=m.CaseDetailOut)
def add_note(case_id: int, body: m.NoteIn, user: CaseReader, conn: ConnDep) -> dict:
    """An investigation note, or progress told to the customer (e-mailed when the case has an address)."""
    return service.add_note(
        conn, case_id=case_id, body=body.body, customer_visible=body.customer_visible, actor=user
    )


@router.post("/cases/{case_id}/responsibility", response_model=m.CaseOut)
def set_responsibility(case_id: int, body: m.ResponsibilityIn, user: Agent, conn: ConnDep) -> dict:
    """Record who was responsible (department, supplier, customer, nobody)."""
    return service.set_responsibility(
        conn, case_id=case_id, party=body.party, detail_text=body.detail, actor=user
    )


@router.post("/cases/{case_id}/status", response_model=m.CaseOut)
def set_status(case_id: int, body: m.StatusIn, user: Agent, conn: ConnDep) -> dict:
    """Start work, withdraw a proposal, close, or reopen."""
    return service.set_status(conn, case_id=case_id, status=body.status, note=body.note, actor=user)


@router.post("/cases/{case_id}/proposal", response_model=m.CaseOut)
def propose(case_id: int, body: m.ProposalIn, user: Agent, conn: ConnDep) -> dict:
    """Put a resolution and compensation (credit note or discount code) to the customer."""
    plan = body.compensation.model_dump() if body.compensation else None
    return to_json(service.propose(conn, case_id=case_id, proposal=body.proposal, plan=plan, actor=user))


@router.post("/cases/{case_id}/acceptance", response_model=m.CaseOut)
def accept(case_id: int, body: m.AcceptIn, user: Agent, conn: ConnDep) -> dict:
    """The customer's answer; accepted: compensation carried out, case resolved, follow-up scheduled."""
    return service.accept(conn, case_id=case_id, accepted=body.accepted, note=body.note, actor=user)


@router.get("/sla", response_model=list[m.SlaOut])
def list_sla(user: CaseReader, conn: ConnDep) -> list[dict]:
    """First-response and resolution targets per severity."""
    return service.list_sla(conn)


@router.put("/sla/{severity}", response_model=m.SlaOut)
def set_sla(severity: m.Severity, body: m.SlaIn, user: Admin, conn: ConnDep) -> dict:
    """Change a severity's targets (admin)."""
    return service.set_sla(conn, severity=severity, actor=user, **body.model_dump())


# ---- care --------------------------------------------------------------------------------------------------


@router.get("/follow-ups", response_model=list[m.FollowUpOut])
def follow_ups(
    user: Agent,
    conn: ConnDep,
    status: Annotated[str | None, Query(pattern="^(pending|done|cancelled)$")] = "pending",
    due_before: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict]:
    """The follow-up task list, by due time."""
    return care.list_follow_ups(conn, status=status, due_before=due_before, limit=limit)


@router.post("/follow-ups/{follow_up_id}/done", response_model=m.FollowUpOut)
def follow_up_done(follow_up_id: int, body: m.FollowUpDoneIn, user: Agent, conn: ConnDep) -> dict:
    """Record the visit and the customer's scores."""
    return care.complete_follow_up(conn, follow_up_id=follow_up_id, answer=body.model_dump(), actor=user)


@router.post("/surveys", status_code=201, response_model=m.SurveyOut)
def add_survey(body: m.SurveyIn, user: Agent, conn: ConnDep) -> dict:
    """A survey answer (satisfaction 1-5, NPS 0-10, feedback tags)."""
    return care.record_survey(conn, data=body.model_dump(), actor=user)


@router.get("/surveys/trend", response_model=list[m.TrendRow])
def survey_trend(
    user: CaseReader,
    conn: ConnDep,
    start: Annotated[dt.datetime, Query(alias="from")],
    end: Annotated[dt.datetime, Query(alias="to")],
) -> list[dict]:
    """Monthly answers, mean satisfaction, NPS and feedback tags."""
    return care.trend(conn, start=start, end=end)


@router.get("/customers/{customer_id}/preferences", response_model=m.PrefsOut)
def get_prefs(customer_id: int, user: Agent, conn: ConnDep) -> dict:
    """A customer's campaign opt-out and language."""
    return care.get_prefs(conn, customer_id=customer_id)


@router.put("/customers/{customer_id}/preferences", response_model=m.PrefsOut)
def set_prefs(customer_id: int, body: m.PrefsIn, user: Agent, conn: ConnDep) -> dict:
    """Set a customer's campaign opt-out and language."""
    return care.set_prefs(
        conn,
        customer_id=customer_id,
        marketing_opt_out=body.marketing_opt_out,
        locale=body.locale,
        actor=user,
    )


# ---- campaigns -----------------------------------------------------------------------------------------------


@router.post("/campaigns", status_code=201, response_model=m.CampaignOut)
def create_campaign(body: m.CampaignIn, user: Agent, conn: ConnDep) -> dict:
    """A care campaign: segment, templates per locale, optional discount code per recipient."""
    return campaigns.create(conn, data=body.model_dump(mode="json"), actor=user)


@router.get("/campaigns", response_model=list[m.CampaignOut])
def list_campaigns(user: Agent, conn: ConnDep) -> list[dict]:
    """Campaigns, newest first."""
    return campaigns.list_(conn)


@router.get("/campaigns/{campaign_id}/audience", response_model=list[m.AudienceRow])
def campaign_audience(campaign_id: int, user: Agent, conn: ConnDep) -> list[dict]:
    """Who the campaign's segment selects today (before opt-out)."""
    return campaigns.audience(conn, campaign_id=campaign_id)


@router.post("/campaigns/{campaign_id}/send", response_model=m.CampaignOut)
def send_campaign(campaign_id: int, user: Agent, conn: ConnDep) -> dict:
    """Queue one e-mail per recipient in the outbox (opted-out customers are skipped)."""
    return campaigns.send(conn, campaign_id=campaign_id, actor=user)
