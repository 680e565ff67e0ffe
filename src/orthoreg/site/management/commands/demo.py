"""orthoreg demo [--no-serve] [--port N]: data directory, migrations, demo data once, users, then serve with the
follow-up worker beside the server (so invitations really go out, into the outbox)."""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from tqdm import tqdm

from orthoreg.site import demo

DEMO_WORKER_INTERVAL = 15.0  # seconds: a resend or a new invitation goes out within a minute


def outbox_description() -> str:
    backend = settings.EMAIL_BACKEND
    if backend.endswith("mailfile.EmailBackend"):
        return f"written as files to {settings.EMAIL_FILE_PATH} (ORTHOREG_EMAIL_URL=smtp://... sends real mail)"  # type: ignore[misc]
    if backend.endswith("console.EmailBackend"):
        return "printed here"
    if backend.endswith("smtp.EmailBackend"):
        return f"sent through the mail server {settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
    return f"handed to {backend}"


class Command(BaseCommand):
    help = "Set up the demo (SQLite in the data directory by default) and serve it on 127.0.0.1 with the worker."

    def add_arguments(self, parser):
        parser.add_argument("--no-serve", action="store_true", help="set up, print the logins and stop")
        parser.add_argument("--port", type=int, default=8000, help="0: any free port")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--cohort", type=int, default=demo.COHORT_PATIENTS,
                            help="synthetic patients to create (first run only)")

    def handle(self, *args, no_serve, port, host, cohort, **options):
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"Data directory: {settings.DATA_DIR}")
        call_command("migrate", interactive=False, verbosity=0)
        if demo.is_loaded():
            self.stdout.write("Demo data already loaded: nothing changed.")
        else:
            self.stdout.write("Loading demo data: the founding patient DF and a synthetic cohort ...")
            with tqdm(total=cohort, unit="patient", file=self.stderr._out) as bar:
                demo.load(cohort=cohort, progress=bar.update)
        password = demo.demo_password()
        demo.ensure_users(password)
        self.stdout.write(self.style.SUCCESS("\northoreg demo is set up."))
        self.stdout.write("Logins (all with the same password):")
        for username, role, _ in demo.DEMO_USERS:
            self.stdout.write(f"  {username:<12} {role}")
        self.stdout.write(f"Password: {password}")
        code = demo.admin_enrolment_code()
        if code:
            self.stdout.write(f"'admin' must set up two-factor sign-in: its one-time enrolment code is {code}.")
        self.stdout.write("Try: sign in as 'clinician' and search for DF.")
        self.stdout.write(f"Emails to patients are {outbox_description()}.\n")
        if no_serve:
            self.stdout.write("Not serving (--no-serve): run 'orthoreg demo' again to serve it with the worker.")
            self.stdout.flush()
            return
        self.stdout.flush()
        call_command("serve", host=host, port=port, with_worker=True, worker_interval=DEMO_WORKER_INTERVAL)
