"""Models of the interop app."""

from django.db import models


class FhirLink(models.Model):
    """What a FHIR import keyed one registry record on: an identifier (system|value), the resource's fullUrl or
    its Type/id. A re-import finds the record through any of its keys and updates it instead of duplicating it.

    The record is in the model implied by the resource type (Patient -> Patient, Condition -> Episode,
    Procedure -> Procedure, QuestionnaireResponse and score Observations -> Response, AdverseEvent ->
    AdverseEvent)."""

    resource_type = models.CharField(max_length=40)
    key = models.CharField(max_length=400)
    object_id = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["resource_type", "key"], name="fhir_link_unique_key")]
        indexes = [models.Index(fields=["resource_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.resource_type} {self.key} -> {self.object_id}"
