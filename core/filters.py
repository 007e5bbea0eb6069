"""Filters shared by every app's FilterSets."""

import django_filters as filters
from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.fields.related import ManyToManyRel, ManyToOneRel, OneToOneRel
from django_filters import fields as filter_fields
from django_filters.filterset import FILTER_FOR_DBFIELD_DEFAULTS
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from core.api.fields import ID_MESSAGE, ascii_integer, id_value


class StableOrderingFilter(filters.OrderingFilter):
    """django-filter's OrderingFilter with the primary key as last key, so pages never overlap on ties."""

    def filter(self, qs, value):
        qs = super().filter(qs, value)
        if value:
            qs = qs.order_by(*qs.query.order_by, "pk")
        return qs


@extend_schema_field(OpenApiTypes.STR)
class ModelMultipleKeyFilter(filters.ModelMultipleChoiceFilter):
    """Several related objects by a readable key (``?team=research&team=data``), not by primary key.

    Give ``field_name="team__slug"`` and ``to_field_name="slug"``: django-filter compares that field.
    """


class AsciiIntegerField(forms.IntegerField):
    """A whole number in ASCII digits with an optional minus sign (core.api.fields.ascii_integer): not ``1.0``,
    ``+1``, `` 1`` or ``١٢٣``, which Django's IntegerField reads as numbers."""

    default_error_messages = {"invalid": "Enter a whole number written in ASCII digits (0-9)."}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        number = ascii_integer(value)
        if number is None:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return number


def _id_check(field, value) -> None:
    """Refuse ``value`` unless it can be an integer key of ``field``'s queryset (a relation by a slug is left
    alone); ``int()`` would read other scripts' digits and ``1.0`` as ids."""
    model = field.queryset.model
    key = model._meta.get_field(field.to_field_name) if field.to_field_name else model._meta.pk
    if isinstance(key, models.IntegerField) and id_value(value) is None:
        raise ValidationError(ID_MESSAGE, code="invalid_id")


class IdModelChoiceField(filter_fields.ModelChoiceField):
    """django-filter's ModelChoiceField, taking integer keys in ASCII digits only."""

    def to_python(self, value):
        if value not in self.empty_values and not (self.null_label is not None and value == self.null_value):
            _id_check(self, value)
        return super().to_python(value)


class IdModelMultipleChoiceField(filter_fields.ModelMultipleChoiceField):
    """django-filter's ModelMultipleChoiceField, taking integer keys in ASCII digits only."""

    def _check_values(self, value):
        for item in value:
            if not (self.null_label is not None and item == self.null_value):
                _id_check(self, item)
        return super()._check_values(value)


class IdModelChoiceFilter(filters.ModelChoiceFilter):
    """A related object by its id (``?provider=3``), in ASCII digits."""

    field_class = IdModelChoiceField


class IdModelMultipleChoiceFilter(filters.ModelMultipleChoiceFilter):
    """Related objects by their ids (``?node=3&node=4``), in ASCII digits."""

    field_class = IdModelMultipleChoiceField


class IntegerFilter(filters.NumberFilter):
    """An integer column (``?index=2``): a whole number in ASCII digits, not a decimal."""

    field_class = AsciiIntegerField


def _with_filter(kind, filter_class) -> dict:
    """django-filter's default for the model field ``kind`` (its extra arguments), with ``filter_class``."""
    return {**FILTER_FOR_DBFIELD_DEFAULTS[kind], "filter_class": filter_class}


class FleetdeckFilterSet(filters.FilterSet):
    """The base of every FilterSet: the filters generated for integer columns and relations (``Meta.fields``)
    take whole numbers and ids in ASCII digits only, and answer anything else with a 400 naming the parameter.
    Declare a relation filter as IdModelChoiceFilter or IdModelMultipleChoiceFilter for the same."""

    FILTER_DEFAULTS = {
        **FILTER_FOR_DBFIELD_DEFAULTS,
        # Subclasses (BigAutoField, PositiveBigIntegerField…) resolve to these through their MRO.
        models.AutoField: {"filter_class": IntegerFilter},
        models.IntegerField: {"filter_class": IntegerFilter},
        models.SmallIntegerField: {"filter_class": IntegerFilter},
        models.PositiveIntegerField: {"filter_class": IntegerFilter},
        models.PositiveSmallIntegerField: {"filter_class": IntegerFilter},
        models.OneToOneField: _with_filter(models.OneToOneField, IdModelChoiceFilter),
        models.ForeignKey: _with_filter(models.ForeignKey, IdModelChoiceFilter),
        models.ManyToManyField: _with_filter(models.ManyToManyField, IdModelMultipleChoiceFilter),
        OneToOneRel: _with_filter(OneToOneRel, IdModelChoiceFilter),
        ManyToOneRel: _with_filter(ManyToOneRel, IdModelMultipleChoiceFilter),
        ManyToManyRel: _with_filter(ManyToManyRel, IdModelMultipleChoiceFilter),
    }
