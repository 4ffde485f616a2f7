"""Remote patient monitoring and risk stratification (issue 17).

Readings (vital-sign Observations) are normalised to UCUM canonical units, checked against
rules that are data (knowledge/rules.json, overridable per organisation), and turn into
de-duplicated alerts (Flag + Task) with escalation, all in `fhirhub worker` reactions and
timers. `$lastn`/`$stats` read the stored data; NEWS2, Morse and LACE are pure scores
written as RiskAssessments. See README "Remote patient monitoring".

Rooms: readings/ (Observations to normalised readings, UCUM), enrolment/ (who is monitored
for what, kept between readings), rules/ (the rules table, pure verdicts, applying them),
alerts/ (Flag + Task alerts and their timers), scores/ (pure NEWS2, Morse, LACE), risk/
(their RiskAssessments in the worker), operations/ ($lastn, $stats), knowledge/ (shipped
data); reactions.py is what the worker runs on committed changes, wiring.py plugs it all
into the hub, context.py is what it reads and writes through.
"""
