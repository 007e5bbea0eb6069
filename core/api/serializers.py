"""Base serializer: model-level rules (``Model.clean``) apply to API writes as they do to forms; ids are strict."""

import copy

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from core.api.fields import StrictPrimaryKeyRelatedField


class ValidatedModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer that runs the model's ``clean()`` on the would-be instance before saving; its relations
    take ids in ASCII digits only (core.api.fields.StrictPrimaryKeyRelatedField)."""

    serializer_related_field = StrictPrimaryKeyRelatedField

    def validate(self, attrs):
        attrs = super().validate(attrs)
        model = self.Meta.model
        many_to_many = {f.name for f in model._meta.many_to_many}
        plain = {k: v for k, v in attrs.items() if k not in many_to_many}
        if self.instance is None:
            instance = model(**plain)
        else:
            instance = copy.copy(self.instance)
            for key, value in plain.items():
                setattr(instance, key, value)
        try:
            instance.clean()
        except DjangoValidationError as exc:
            detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
            raise serializers.ValidationError(detail) from exc
        return attrs
