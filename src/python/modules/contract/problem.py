"""RFC 9457 problem details: the body of every error response."""

from pydantic import BaseModel, ConfigDict, Field

MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where in the request the value is.")
    msg: str = Field(description="What is wrong with it.")
    type: str = Field(description="Machine-readable error kind.")
    pointer: str | None = Field(
        None,
        description="For a value in the body: its JSON pointer (RFC 6901), e.g. `/input/seed`.",
    )


class Problem(BaseModel):
    model_config = ConfigDict(json_schema_extra={"description": "RFC 9457 problem details."})

    type: str = Field("about:blank", description="URI identifying the problem kind.")
    title: str = Field(description="Short summary of the problem kind.", examples=["Not Found"])
    status: int = Field(description="The HTTP status code.", examples=[404])
    detail: str | None = Field(None, description="What went wrong with this request.")
    instance: str | None = Field(None, description="The request path.")
    request_id: str | None = Field(
        None, description="The request's ID (also in `X-Request-ID`); quote it when reporting."
    )
    errors: list[FieldError] | None = Field(
        None, description="For validation problems: every offending field."
    )
