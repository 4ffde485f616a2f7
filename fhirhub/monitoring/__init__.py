"""Remote patient monitoring and risk stratification (issue 17).

Readings (vital-sign Observations) are normalised to UCUM canonical units, checked against
rules that are data (knowledge/rules.json, overridable per organisation), and turn into
de-duplicated alerts (Flag + Task) with escalation, all in `fhirhub worker` reactions and
timers. `$lastn`/`$stats` read the stored data; NEWS2, Morse and LACE are pure scores
written as RiskAssessments. See README "Remote patient monitoring".
"""
