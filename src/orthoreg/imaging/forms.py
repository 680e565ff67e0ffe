from django import forms
from django.conf import settings

from orthoreg.registry.coding import Side

from .models import Image


class DateInput(forms.DateInput):
    input_type = "date"


class UploadForm(forms.Form):
    file = forms.FileField(label="Radiograph file")  # help text in __init__: the limit is read per request
    date = forms.DateField(label="Date taken", required=False, widget=DateInput,
                           help_text="Read from the DICOM header when left empty")
    view = forms.ChoiceField(choices=Image.View.choices, initial=Image.View.AP_WEIGHT_BEARING)
    side = forms.ChoiceField(choices=Side.choices, help_text="The side the radiograph shows")
    caption = forms.CharField(max_length=300, required=False,
                              help_text="Shown under the image, e.g. “6 months after BMC”")
    description = forms.CharField(label="Study description", max_length=200, required=False,
                                  help_text="For a new date only, e.g. “Pre-treatment foot series”")

    def __init__(self, *args, episode=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = (f"DICOM, PNG or JPEG, up to {settings.MAX_UPLOAD_MB} MB. "
                                         "The file is kept unchanged.")
        if episode is not None and episode.side in Side.values:
            self.fields["side"].initial = episode.side


class ImageEditForm(forms.Form):
    view = forms.ChoiceField(choices=Image.View.choices)
    side = forms.ChoiceField(choices=Side.choices)
    caption = forms.CharField(max_length=300, required=False)


class PacsSearchForm(forms.Form):
    since = forms.DateField(label="Taken on or after", required=False, widget=DateInput,
                            help_text="Leave empty for every study of the patient")
