"""Customer request and response schemas."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

IdDocumentType = Literal["id_card", "passport", "residence_permit"]
PHONE_PATTERN = r"^\+?[0-9 ()/-]{5,32}$"
# Same shape as the database CHECK; full RFC 5322 validation is not worth a dependency here.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class CustomerIn(BaseModel):
    """A new customer; licence and ID may be completed later but are required to confirm an order."""

    model_config = ConfigDict(extra="forbid")

    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    email: str | None = Field(default=None, pattern=EMAIL_PATTERN, max_length=254)
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    address: str = Field(default="", max_length=500)
    date_of_birth: dt.date | None = None
    id_document_type: IdDocumentType | None = None
    id_document_number: str | None = Field(default=None, min_length=3, max_length=40)
    licence_number: str | None = Field(default=None, min_length=3, max_length=40)
    licence_class: str | None = Field(default=None, pattern=r"^[A-Z0-9]{1,4}(,[A-Z0-9]{1,4})*$")
    licence_expiry: dt.date | None = None
    blacklisted: bool = False
    blacklist_reason: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _checks(self) -> CustomerIn:
        if self.blacklisted and not (self.blacklist_reason or "").strip():
            raise ValueError("blacklist_reason is required when blacklisted is true")
        if self.date_of_birth and self.date_of_birth > dt.date.today():
            raise ValueError("date_of_birth is in the future")
        return self


class CustomerPatch(BaseModel):
    """Fields to change; omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    first_name: str | None = Field(default=None, min_length=1, max_length=100)
    last_name: str | None = Field(default=None, min_length=1, max_length=100)
    email: str | None = Field(default=None, pattern=EMAIL_PATTERN, max_length=254)
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    address: str | None = Field(default=None, max_length=500)
    date_of_birth: dt.date | None = None
    id_document_type: IdDocumentType | None = None
    id_document_number: str | None = Field(default=None, min_length=3, max_length=40)
    licence_number: str | None = Field(default=None, min_length=3, max_length=40)
    licence_class: str | None = Field(default=None, pattern=r"^[A-Z0-9]{1,4}(,[A-Z0-9]{1,4})*$")
    licence_expiry: dt.date | None = None
    blacklisted: bool | None = None
    blacklist_reason: str | None = Field(default=None, max_length=1000)


class CustomerOut(BaseModel):
    """A customer as stored."""

    id: int
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    address: str
    date_of_birth: dt.date | None
    id_document_type: str | None
    id_document_number: str | None
    licence_number: str | None
    licence_class: str | None
    licence_expiry: dt.date | None
    blacklisted: bool
    blacklist_reason: str | None
    erased_at: dt.datetime | None = None
    created_at: dt.datetime
    updated_at: dt.datetime


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    total: int
    limit: int
    offset: int
