"""The FHIR operations registry: custom operations declared once, served and described.

Domain packages declare an `Operation` (name, level, parameters, access rule, handler);
the composition root registers it. The API serves it under `[base]/[Type]/$name`,
`[base]/[Type]/[id]/$name` or `[base]/$name`, parses GET and POST Parameters through one
code path, and the registry generates its OperationDefinition and CapabilityStatement
entries. See README "Architecture: hub mechanisms".
"""
