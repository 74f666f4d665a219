"""Customer-service schemas and constants (tables in migration 0600)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

Locale = Literal["en", "zh-CN"]
LOCALES = ("en", "zh-CN")
CaseKind = Literal["enquiry", "complex", "complaint"]
Channel = Literal["phone", "email", "app", "counter", "social"]
Severity = Literal["critical", "high", "medium", "low"]
CaseStatus = Literal["open", "in_progress", "proposed", "resolved", "closed"]
CASE_STATUSES = ("open", "in_progress", "proposed", "resolved", "closed")
Party = Literal["department", "supplier", "customer", "nobody"]
PhraseKind = Literal["greeting", "closing", "apology", "empathy", "hold", "follow_up", "compensation"]
# Status moves a person may make (resolved/closed are reached through accept and close).
TRANSITIONS = {
    "open": ("in_progress",),
    "in_progress": ("proposed",),
    "proposed": ("in_progress", "resolved"),
    "resolved": ("closed", "in_progress"),
    "closed": ("in_progress",),
}
FOLLOW_UP_AFTER = dt.timedelta(days=3)  # a courtesy call a few days after a return or a resolution
Code = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# ---- knowledge base ----------------------------------------------------------------------------------------


class ArticleIn(_In):
    category: str = Code
    locale: Locale
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=20000)
    keywords: str = Field(default="", max_length=1000)
    status: Literal["draft", "published"] = "published"


class ArticlePatch(_In):
    category: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{1,31}$")
    title: str | None = Field(default=None, min_length=1, max_length=300)
    body: str | None = Field(default=None, min_length=1, max_length=20000)
    keywords: str | None = Field(default=None, max_length=1000)
    status: Literal["draft", "published", "archived"] | None = None


class ArticleOut(BaseModel):
    id: int
    category: str
    locale: Locale
    title: str
    body: str
    keywords: str
    version: int
    status: str
    usage_count: int
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    score: float | None = Field(default=None, description="search rank (search results only)")


class ArticleVersionOut(BaseModel):
    version: int
    title: str
    body: str
    edited_by: str
    edited_at: dt.datetime


class CategoryOut(BaseModel):
    code: str
    name_en: str
    name_zh: str


class PhraseIn(_In):
    kind: PhraseKind
    locale: Locale
    text: str = Field(min_length=1, max_length=2000)


class PhraseOut(BaseModel):
    id: int
    kind: str
    locale: Locale
    text: str


# ---- cases -------------------------------------------------------------------------------------------------


class CaseIn(_In):
    kind: CaseKind
    channel: Channel
    customer_id: int = Field(gt=0)
    order_id: int | None = Field(default=None, gt=0)
    vehicle_id: int | None = Field(default=None, gt=0)
    category: str = Field(min_length=1, max_length=64)
    severity: Severity = "medium"
    subject: str = Field(min_length=1, max_length=300)
    request: str = Field(default="", max_length=4000, description="what the customer asks for")
    contact_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)
    contact_phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()/-]{5,32}$")
    locale: Locale = "en"
    department: str = Field(default="customer_service", pattern=r"^[a-z][a-z0-9_]{1,31}$")


class AssignIn(_In):
    assignee: str | None = Field(default=None, min_length=3, max_length=64, description="username")
    department: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{1,31}$")

    @model_validator(mode="after")
    def _one(self) -> AssignIn:
        if self.assignee is None and self.department is None:
            raise ValueError("name an assignee, a department or both")
        return self


class NoteIn(_In):
    body: str = Field(min_length=1, max_length=4000)
    customer_visible: bool = Field(default=False, description="a progress report told to the customer")


class StatusIn(_In):
    status: CaseStatus
    note: str = Field(default="", max_length=2000)


class ResponsibilityIn(_In):
    party: Party
    detail: str = Field(default="", max_length=1000)


class CompensationIn(_In):
    kind: Literal["credit_note", "discount_code"]
    amount: Decimal | None = Field(default=None, gt=0, max_digits=12, decimal_places=2)
    percent: Decimal | None = Field(default=None, gt=0, le=100, max_digits=5, decimal_places=2)
    invoice_id: int | None = Field(default=None, gt=0, description="credit note: the invoice it reduces")
    valid_days: int = Field(default=90, ge=1, le=366)

    @model_validator(mode="after")
    def _shape(self) -> CompensationIn:
        if self.kind == "credit_note" and (self.amount is None or self.percent is not None):
            raise ValueError("a credit note has an amount and no percent")
        if self.kind == "discount_code" and (self.amount is None) == (self.percent is None):
            raise ValueError("a discount code has an amount or a percent")
        return self


class ProposalIn(_In):
    proposal: str = Field(min_length=1, max_length=4000)
    compensation: CompensationIn | None = None


class AcceptIn(_In):
    accepted: bool
    note: str = Field(default="", max_length=2000)


class CaseOut(BaseModel):
    id: int
    kind: str
    channel: str
    customer_id: int
    order_id: int | None
    vehicle_id: int | None
    category: str
    severity: str
    subject: str
    request: str
    contact_email: str | None
    contact_phone: str | None
    locale: str
    status: str
    department: str
    assignee: str | None = None
    responsible_party: str | None
    responsible_detail: str | None
    proposal: str | None
    customer_accepted: bool | None
    compensation: Any = None
    first_response_due: dt.datetime
    resolution_due: dt.datetime
    first_response_at: dt.datetime | None
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    escalation_level: int
    escalated_at: dt.datetime | None
    reopened: int
    satisfaction: int | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime


class CaseEventOut(BaseModel):
    id: int
    at: dt.datetime
    actor: str
    kind: str
    from_status: str | None
    to_status: str | None
    body: str
    data: Any = None


class EvidenceOut(BaseModel):
    kind: str
    data: Any
    collected_at: dt.datetime


class CaseDetailOut(CaseOut):
    evidence: list[EvidenceOut] = []
    events: list[CaseEventOut] = []


class SlaOut(BaseModel):
    severity: str
    first_response_minutes: int
    resolution_minutes: int


class SlaIn(_In):
    first_response_minutes: int = Field(gt=0, le=525600)
    resolution_minutes: int = Field(gt=0, le=525600)


# ---- care: follow-ups, surveys, preferences ------------------------------------------------------------------


class FollowUpOut(BaseModel):
    id: int
    reason: str
    customer_id: int
    case_id: int | None
    order_id: int | None
    due_at: dt.datetime
    status: str
    assignee_user_id: int | None
    done_at: dt.datetime | None
    done_by: str | None
    note: str


class FollowUpDoneIn(_In):
    satisfaction: int | None = Field(default=None, ge=1, le=5)
    nps: int | None = Field(default=None, ge=0, le=10)
    comment: str = Field(default="", max_length=4000)
    tags: list[str] = Field(default=[], max_length=10)
    note: str = Field(default="", max_length=2000)


class SurveyIn(_In):
    customer_id: int = Field(gt=0)
    case_id: int | None = Field(default=None, gt=0)
    order_id: int | None = Field(default=None, gt=0)
    satisfaction: int | None = Field(default=None, ge=1, le=5)
    nps: int | None = Field(default=None, ge=0, le=10)
    comment: str = Field(default="", max_length=4000)
    tags: list[str] = Field(default=[], max_length=10)

    @model_validator(mode="after")
    def _some_score(self) -> SurveyIn:
        if self.satisfaction is None and self.nps is None:
            raise ValueError("a survey answer has a satisfaction score, an NPS score or both")
        return self


class SurveyOut(BaseModel):
    id: int
    customer_id: int
    case_id: int | None
    order_id: int | None
    satisfaction: int | None
    nps: int | None
    comment: str
    tags: list[str]
    answered_at: dt.datetime


class TrendRow(BaseModel):
    month: dt.date
    answers: int
    satisfaction_avg: float | None
    nps: float | None = Field(description="promoters % minus detractors % (of NPS answers)")
    tags: dict[str, int]


class PrefsIn(_In):
    marketing_opt_out: bool
    locale: Locale = "en"


class PrefsOut(BaseModel):
    customer_id: int
    marketing_opt_out: bool
    locale: str
    updated_at: dt.datetime


# ---- campaigns ------------------------------------------------------------------------------------------------


class Template(_In):
    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(
        min_length=1, max_length=10000, description="{first_name}, {last_name}, {code}, {valid_until}"
    )


class Segment(_In):
    min_rentals: int | None = Field(default=None, ge=0)
    max_rentals: int | None = Field(default=None, ge=0)
    min_spend: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)
    last_rental_before: AwareDatetime | None = None
    last_rental_after: AwareDatetime | None = None
    birthday_month: int | None = Field(default=None, ge=1, le=12)
    birthday_on: dt.date | None = Field(
        default=None, description="customers whose birthday (month/day) is this"
    )


class CampaignIn(_In):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["holiday", "birthday", "discount", "care"]
    segment: Segment = Segment()
    templates: dict[Locale, Template] = Field(min_length=1)
    discount_percent: Decimal | None = Field(default=None, gt=0, le=100, max_digits=5, decimal_places=2)
    discount_valid_days: int = Field(default=30, ge=1, le=366)

    @model_validator(mode="after")
    def _english(self) -> CampaignIn:
        if "en" not in self.templates:
            raise ValueError("templates need an 'en' version (the fallback language)")
        return self


class CampaignOut(BaseModel):
    id: int
    name: str
    kind: str
    segment: Any
    templates: Any
    discount: Any = None
    status: str
    created_by: str
    created_at: dt.datetime
    sent_at: dt.datetime | None
    recipients: dict[str, int] = {}


class AudienceRow(BaseModel):
    customer_id: int
    email: str | None
    rentals: int
    spend: Decimal
    last_rental_at: dt.datetime | None
