from django.apps import AppConfig


class FollowupConfig(AppConfig):
    name = "orthoreg.followup"
    label = "followup"

    def ready(self) -> None:
        from orthoreg.instruments import services as instruments
        from orthoreg.registry import services as registry

        from .services import answers, schedule

        registry.index_procedure_changed.connect(schedule._on_index_changed, dispatch_uid="followup-index")
        registry.procedure_recorded.connect(schedule._on_procedure, dispatch_uid="followup-procedure")
        registry.patient_status_changed.connect(schedule._on_status, dispatch_uid="followup-status")
        # A response recorded anywhere (the link, staff entry, the patient page) completes its assessment.
        instruments.response_recorded.connect(answers._on_response_recorded, dispatch_uid="followup-response")
