"""Leave room in fleet_gpu pages so the per-poll update of each GPU's latest reading can be a HOT update
(no index writes): none of the columns it changes is indexed."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("fleet", "0005_gpu_sample_model")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE fleet_gpu SET (fillfactor = 70)", "ALTER TABLE fleet_gpu RESET (fillfactor)"
        )
    ]
