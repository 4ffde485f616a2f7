"""ResourceValidator behaviour: each rule with the issue code and expression it reports."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhirhub.fhir.definitions import Definitions
from fhirhub.fhir.errors import Issue
from fhirhub.fhir.validation import ResourceValidator

NARRATIVE = {
    "status": "generated",
    "div": '<div xmlns="http://www.w3.org/1999/xhtml">Example</div>',
}
PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "text": NARRATIVE,
    "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
    "gender": "male",
    "birthDate": "1974-12-25",
}
OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "o1",
    "text": NARRATIVE,
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
    "subject": {"reference": "Patient/p1"},
    "valueQuantity": {
        "value": 67.5,
        "unit": "kg",
        "system": "http://unitsofmeasure.org",
        "code": "kg",
    },
}


@pytest.fixture(scope="module")
def validator(definitions: Definitions) -> ResourceValidator:
    return ResourceValidator(definitions)


def patient(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(PATIENT), **changes}


def observation(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(OBSERVATION), **changes}


def errors(issues: list[Issue]) -> list[tuple[str, str]]:
    """(code, expression) of every error, in report order."""
    return [(i.code, i.expression[0]) for i in issues if i.severity == "error"]


def only_error(validator: ResourceValidator, resource: dict[str, Any], **kw: Any) -> Issue:
    found = [i for i in validator.validate(resource, **kw) if i.severity == "error"]
    assert len(found) == 1, found
    return found[0]


def test_valid_resources_have_no_issues(validator: ResourceValidator) -> None:
    assert validator.validate(patient()) == []
    assert validator.validate(observation()) == []


def test_gender_outside_required_value_set(validator: ResourceValidator) -> None:
    issue = only_error(validator, patient(gender="blue"))
    assert (issue.code, issue.expression) == ("code-invalid", ("Patient.gender",))
    assert issue.diagnostics == (
        "Patient.gender: 'blue' is not in the required value set "
        "http://hl7.org/fhir/ValueSet/administrative-gender"
    )


def test_unknown_element(validator: ResourceValidator) -> None:
    issue = only_error(validator, patient(foo="bar"))
    assert (issue.code, issue.expression) == ("structure", ("Patient.foo",))
    assert "unknown element 'foo'" in issue.diagnostics


def test_impossible_date(validator: ResourceValidator) -> None:
    issue = only_error(validator, patient(birthDate="2020-13-45"))
    assert (issue.code, issue.expression) == ("value", ("Patient.birthDate",))
    assert "'2020-13-45' is not a valid date" in issue.diagnostics
    # the spec regex allows day 30 in February; the calendar does not
    assert only_error(validator, patient(birthDate="2021-02-29")).code == "value"
    assert validator.validate(patient(birthDate="2020-02-29")) == []


def test_boolean_given_as_string(validator: ResourceValidator) -> None:
    issue = only_error(validator, patient(active="true"))
    assert (issue.code, issue.expression) == ("value", ("Patient.active",))
    assert "expected a JSON boolean" in issue.diagnostics


def test_object_where_array_expected(validator: ResourceValidator) -> None:
    issue = only_error(validator, patient(name={"family": "Chalmers"}))
    assert (issue.code, issue.expression) == ("structure", ("Patient.name",))


def test_array_where_single_value_expected(validator: ResourceValidator) -> None:
    issue = only_error(validator, patient(gender=["male"]))
    assert (issue.code, issue.expression) == ("structure", ("Patient.gender",))


def test_missing_required_element(validator: ResourceValidator) -> None:
    obs = observation()
    del obs["status"]
    issue = only_error(validator, obs)
    assert (issue.code, issue.expression) == ("required", ("Observation.status",))


def test_two_choice_variants(validator: ResourceValidator) -> None:
    issue = only_error(validator, observation(valueString="heavy"))
    assert (issue.code, issue.expression) == ("structure", ("Observation.value[x]",))
    assert "valueQuantity" in issue.diagnostics and "valueString" in issue.diagnostics


def test_unknown_choice_variant(validator: ResourceValidator) -> None:
    obs = observation(valueFoo="x")
    del obs["valueQuantity"]
    issue = only_error(validator, obs)
    assert (issue.code, issue.expression) == ("structure", ("Observation.valueFoo",))


def test_contained_resource_is_validated(validator: ResourceValidator) -> None:
    contained = {"resourceType": "Organization", "id": "org", "name": "ACME", "foo": 1}
    resource = patient(contained=[contained], managingOrganization={"reference": "#org"})
    issue = only_error(validator, resource)
    assert (issue.code, issue.expression) == ("structure", ("Patient.contained[0].foo",))


def test_contained_resource_rules(validator: ResourceValidator) -> None:
    contained = {"resourceType": "Organization", "name": "ACME", "meta": {"versionId": "1"}}
    found = errors(validator.validate(patient(contained=[contained])))
    assert ("required", "Patient.contained[0]") in found  # no id
    assert ("invariant", "Patient.contained[0].meta") in found  # dom-4
    unreferenced = {"resourceType": "Organization", "id": "org", "name": "ACME"}
    issue = only_error(validator, patient(contained=[unreferenced]))
    assert (issue.code, issue.expression) == ("invariant", ("Patient.contained[0]",))
    assert "dom-3" in issue.diagnostics


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("Patient/", "not a valid reference"),
        ("Nope/1", "'Nope' is not a FHIR resource type"),
        ("#missing", "does not match the id of any contained resource"),
        ("Patient/a b", "not a valid reference"),
        ("urn:uuid:not-a-uuid", "not a valid urn:uuid"),
        ("Medication/1", "a reference to Medication is not allowed here"),
    ],
)
def test_bad_reference(validator: ResourceValidator, reference: str, message: str) -> None:
    issue = only_error(validator, observation(subject={"reference": reference}))
    assert (issue.code, issue.expression) == ("value", ("Observation.subject.reference",))
    assert message in issue.diagnostics


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/p1",
        "Patient/p1/_history/2",
        "http://example.org/fhir/Patient/p1",
        "urn:uuid:9b1d5e6c-0f5e-4d7b-8c4a-3f0e9b1d5e6c",
        "urn:oid:1.2.3.4",
    ],
)
def test_good_reference(validator: ResourceValidator, reference: str) -> None:
    assert errors(validator.validate(observation(subject={"reference": reference}))) == []


def test_conditional_references(validator: ResourceValidator) -> None:
    obs = observation(subject={"reference": "Patient?identifier=http://x|123"})
    issue = only_error(validator, obs)
    assert (issue.code, issue.expression) == ("value", ("Observation.subject.reference",))
    assert "conditional reference" in issue.diagnostics
    assert validator.validate(obs, allow_conditional_refs=True) == []


def test_empty_string(validator: ResourceValidator) -> None:
    issue = only_error(validator, patient(birthDate=""))
    assert (issue.code, issue.expression) == ("value", ("Patient.birthDate",))
    assert "empty string" in issue.diagnostics


def test_empty_object_and_array(validator: ResourceValidator) -> None:
    issue = only_error(validator, patient(maritalStatus={}))
    assert (issue.code, issue.expression) == ("invariant", ("Patient.maritalStatus",))
    assert "ele-1" in issue.diagnostics
    issue = only_error(validator, patient(telecom=[]))
    assert (issue.code, issue.expression) == ("structure", ("Patient.telecom",))


def test_null_values(validator: ResourceValidator) -> None:
    issue = only_error(validator, patient(active=None))
    assert (issue.code, issue.expression) == ("value", ("Patient.active",))
    issue = only_error(validator, patient(name=[None]))
    assert (issue.code, issue.expression) == ("value", ("Patient.name[0]",))


def test_invariant_obs6(validator: ResourceValidator) -> None:
    absent = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason"}]}
    issue = only_error(validator, observation(dataAbsentReason=absent))
    assert (issue.code, issue.expression) == ("invariant", ("Observation",))
    assert issue.diagnostics.startswith("Observation: obs-6: dataAbsentReason SHALL only")


def test_invariant_pat1(validator: ResourceValidator) -> None:
    issue = only_error(validator, patient(contact=[{"gender": "female"}]))
    assert (issue.code, issue.expression) == ("invariant", ("Patient.contact[0]",))
    assert "pat-1" in issue.diagnostics
    assert validator.validate(patient(contact=[{"name": {"family": "Chalmers"}}])) == []


def test_invariant_on_datatype(validator: ResourceValidator) -> None:
    period = {"start": "2020-01-02T10:00:00+01:00", "end": "2020-01-02T09:30:00Z"}
    assert errors(validator.validate(patient(name=[{"family": "X", "period": period}]))) == []
    period = {"start": "2020-01-02", "end": "2020-01-01"}
    issue = only_error(validator, patient(name=[{"family": "X", "period": period}]))
    assert (issue.code, issue.expression) == ("invariant", ("Patient.name[0].period",))
    assert "per-1" in issue.diagnostics


def test_warning_constraints_are_warnings(validator: ResourceValidator) -> None:
    resource = patient()
    del resource["text"]
    (issue,) = validator.validate(resource)
    assert (issue.severity, issue.code, issue.expression) == ("warning", "invariant", ("Patient",))
    assert "dom-6" in issue.diagnostics


def test_many_errors_reported_together(validator: ResourceValidator) -> None:
    resource = patient(gender="blue", foo=1, birthDate="1974-13-01", active="yes")
    resource["name"][0]["given"][1] = 42
    obs = observation(status="done", subject={"reference": "Nope/1"}, valueString="x")
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": resource}, {"resource": obs}],
    }
    # document order, every problem in one pass
    assert errors(validator.validate(bundle)) == [
        ("value", "Bundle.entry[0].resource.name[0].given[1]"),
        ("code-invalid", "Bundle.entry[0].resource.gender"),
        ("value", "Bundle.entry[0].resource.birthDate"),
        ("structure", "Bundle.entry[0].resource.foo"),
        ("value", "Bundle.entry[0].resource.active"),
        ("code-invalid", "Bundle.entry[1].resource.status"),
        ("value", "Bundle.entry[1].resource.subject.reference"),
        ("structure", "Bundle.entry[1].resource.value[x]"),
    ]


def test_resource_type_rules(validator: ResourceValidator) -> None:
    issue = only_error(validator, {"resourceType": "Nope"})
    assert (issue.code, issue.expression) == ("value", ("Nope",))
    validator.validate(observation())  # compiles the Quantity datatype ...
    issue = only_error(validator, {"resourceType": "Quantity", "value": 1})
    assert issue.diagnostics == "Quantity: unknown resourceType 'Quantity'"  # ... not a resource
    issue = only_error(validator, {"id": "x"})
    assert issue.code == "required"
    nested = patient(maritalStatus={"resourceType": "CodeableConcept", "text": "single"})
    issue = only_error(validator, nested)
    assert (issue.code, issue.expression) == ("structure", ("Patient.maritalStatus.resourceType",))
    assert validator.validate([]) == [Issue("structure", "a FHIR resource must be a JSON object")]  # type: ignore[arg-type]


def test_primitive_extensions(validator: ResourceValidator) -> None:
    ext = {"extension": [{"url": "http://example.org/x", "valueString": "why"}]}
    name = {"family": "X", "given": ["A", None], "_given": [None, ext]}
    resource = patient(name=[name], _birthDate={"id": "b1"}, _gender=ext)
    assert validator.validate(resource) == []
    name = {"family": "X", "given": ["A", None], "_given": [None, None]}
    issue = only_error(validator, patient(name=[name]))
    assert (issue.code, issue.expression) == ("value", ("Patient.name[0].given[1]",))
    issue = only_error(validator, patient(name=[{"given": ["A"], "_given": [ext, ext]}]))
    assert (issue.code, issue.expression) == ("structure", ("Patient.name[0]._given",))
    issue = only_error(validator, patient(_birthDate={"value": "x"}))
    assert (issue.code, issue.expression) == ("structure", ("Patient.birthDate.value",))


def test_extensions(validator: ResourceValidator) -> None:
    good = {"url": "http://example.org/a", "valueCodeableConcept": {"text": "x"}}
    nested = {"url": "http://example.org/b", "extension": [good]}
    assert validator.validate(patient(extension=[good, nested])) == []
    found = errors(validator.validate(patient(extension=[{"valueString": "x"}])))
    assert found == [("required", "Patient.extension[0].url")]
    both = {"url": "http://example.org/c", "valueString": "x", "extension": [good]}
    issue = only_error(validator, patient(modifierExtension=[both]))
    assert (issue.code, issue.expression) == ("invariant", ("Patient.modifierExtension[0]",))
    assert "ext-1" in issue.diagnostics


def test_primitive_formats(validator: ResourceValidator) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"multipleBirthInteger": 2**31}, "Patient.multipleBirthInteger"),
        ({"multipleBirthInteger": 1.5}, "Patient.multipleBirthInteger"),
        ({"id": "a" * 65}, "Patient.id"),
        ({"id": "a_b"}, "Patient.id"),
        ({"language": "en  US"}, "Patient.language"),
        ({"deceasedDateTime": "2020-01-01T10:00:00"}, "Patient.deceasedDateTime"),
        ({"photo": [{"contentType": "image/png", "data": "not base64!"}]}, "Patient.photo[0].data"),
        ({"implicitRules": "has space"}, "Patient.implicitRules"),
    ]
    for change, where in cases:
        issue = only_error(validator, patient(**change))
        assert (issue.code, issue.expression) == ("value", (where,)), change
    found = errors(validator.validate(observation(valueQuantity={"value": "67"})))
    assert found == [("value", "Observation.valueQuantity.value")]


def test_narrative_div(validator: ResourceValidator) -> None:
    for div in [
        "<p>no div</p>",
        "<div>no namespace</div>",
        '<div xmlns="http://www.w3.org/1999/xhtml"><script>x()</script></div>',
        '<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x()">hi</p></div>',
        '<div xmlns="http://www.w3.org/1999/xhtml"><p>unclosed</div>',
        '<div xmlns="http://www.w3.org/1999/xhtml">  </div>',
    ]:
        issue = only_error(validator, patient(text={"status": "generated", "div": div}))
        assert (issue.code, issue.expression) == ("value", ("Patient.text.div",)), div
    div = '<div xmlns="http://www.w3.org/1999/xhtml"><p>caf&eacute;&nbsp;&amp;</p></div>'
    assert validator.validate(patient(text={"status": "generated", "div": div})) == []


def test_nested_resources_in_bundle_and_parameters(validator: ResourceValidator) -> None:
    params = {
        "resourceType": "Parameters",
        "parameter": [{"name": "p", "resource": patient(gender="blue")}],
    }
    found = errors(validator.validate(params))
    assert found == [("code-invalid", "Parameters.parameter[0].resource.gender")]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": "x"}]}
    assert errors(validator.validate(bundle)) == [("value", "Bundle.entry[0].resource")]


def test_codeable_concept_required_binding(validator: ResourceValidator) -> None:
    system = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    condition = {
        "resourceType": "Condition",
        "text": NARRATIVE,
        "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {"coding": [{"system": system, "code": "active"}]},
    }
    assert validator.validate(condition) == []
    condition["clinicalStatus"] = {"coding": [{"system": system, "code": "sleepy"}]}
    issue = only_error(validator, condition)
    assert (issue.code, issue.expression) == ("code-invalid", ("Condition.clinicalStatus",))
    # codings from other systems are not judged (the brief: only when the system matches)
    condition["clinicalStatus"] = {"coding": [{"system": "http://example.org", "code": "x"}]}
    assert validator.validate(condition) == []


def test_choice_type_invariant(validator: ResourceValidator) -> None:
    questionnaire: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "text": NARRATIVE,
        "status": "active",
        "item": [
            {"linkId": "1", "type": "boolean"},
            {
                "linkId": "2",
                "type": "string",
                "enableWhen": [{"question": "1", "operator": "exists", "answerBoolean": True}],
            },
        ],
    }
    assert validator.validate(questionnaire) == []
    questionnaire["item"][1]["enableWhen"][0] = {
        "question": "1",
        "operator": "exists",
        "answerString": "yes",
    }
    issue = only_error(validator, questionnaire)
    assert (issue.code, issue.expression) == ("invariant", ("Questionnaire.item[1].enableWhen[0]",))
    assert "que-7" in issue.diagnostics
