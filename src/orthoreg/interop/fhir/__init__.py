"""FHIR R4 export and import (fhir.resources R4B models validate every resource; docs/fhir.md documents the
mapping, the extensions and the identifiers)."""
