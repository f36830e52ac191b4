"""Shared vocabulary and the package-wide defaults.

Every column name, marker name, period label and interval width used anywhere in
bayesct is defined here once, so that the data layer, the classical tables, the
model and the report all speak the same language.
"""

from __future__ import annotations

from typing import Final

#: Probability mass of every credible interval bayesct reports (median [95% CrI]).
CI_PROB: Final[float] = 0.95

#: The six lung zones of the semi-quantitative chest CT score, each scored 0-4:
#: right upper / middle / lower, left upper / middle / lower. Optional visit columns.
CT_ZONES: Final[tuple[str, ...]] = ("zone_ru", "zone_rm", "zone_rl", "zone_lu", "zone_lm", "zone_ll")
#: Number of lung zones.
N_ZONES: Final[int] = len(CT_ZONES)
#: Maximum score of one lung zone.
ZONE_MAX: Final[int] = 4
#: Maximum of the semi-quantitative chest CT score (6 lung zones x 0-4).
CT_MAX: Final[int] = N_ZONES * ZONE_MAX

#: The cohort simulator's generators: ``joint`` is the model bayesct's ``joint`` spec fits;
#: ``zones`` and ``skewed`` are not (see :mod:`bayesct.data.zones`).
GENERATORS: Final[tuple[str, ...]] = ("joint", "zones", "skewed")

PATIENT: Final[str] = "patient_id"
DAY: Final[str] = "day"
CT: Final[str] = "ct_score"
DIED: Final[str] = "died"
PERIOD: Final[str] = "period"
AGE: Final[str] = "age"
SEX: Final[str] = "sex"

#: Date columns from which ``day`` (days since symptom onset) is derived when the visit
#: table has no ``day``: the patient's onset date and each visit's scan date (onset day = day 0).
ONSET_DATE: Final[str] = "onset_date"
SCAN_DATE: Final[str] = "scan_date"
#: An optional patient-level admission date, kept as ``ADMISSION_DAY`` (days from onset to admission).
ADMISSION_DATE: Final[str] = "admission_date"
ADMISSION_DAY: Final[str] = "admission_day"

#: Laboratory markers of the input contract, in the order the package reports them.
LABS: Final[tuple[str, ...]] = (
    "nlr",
    "lymphocyte_count",
    "lymphocyte_pct",
    "neutrophil_pct",
    "d_dimer",
    "ldh",
    "esr",
)
#: Labs that are percentages, strictly between 0 and 100 (modelled as logit(value / 100)).
PCT_LABS: Final[frozenset[str]] = frozenset({"lymphocyte_pct", "neutrophil_pct"})
#: Visit-level columns used only to derive NLR when ``nlr`` itself is absent.
DERIVATION_COLUMNS: Final[tuple[str, ...]] = ("neutrophil_count",)

#: Known direction of each lab's association with disease severity: +1 if the lab goes up
#: as the disease worsens (LDH, D-dimer, ESR, NLR, neutrophil %), -1 if it goes down
#: (lymphocyte count and %). Under ``[random_effects] loading_signs = "known"`` the factor
#: model's loading of lab k is ``LAB_DIRECTION[k] * |loading|``: the labs can then never set
#: the shared severity's sign against the CT score (whose loading is fixed at +1).
LAB_DIRECTION: Final[dict[str, int]] = {
    "nlr": 1,
    "lymphocyte_count": -1,
    "lymphocyte_pct": -1,
    "neutrophil_pct": 1,
    "d_dimer": 1,
    "ldh": 1,
    "esr": 1,
}

#: The transforms a user-declared lab (``--lab NAME:TRANSFORM[:DIRECTION]``, a columns file's
#: ``[labs]`` table) may name: ``log`` (positive values, log(value)) or ``pct`` (percentages
#: strictly between 0 and 100, logit(value / 100)), as the built-in labs are modelled.
LAB_TRANSFORMS: Final[tuple[str, ...]] = ("log", "pct")
#: The directions a declaration may name, as the sign of ``LAB_DIRECTION``.
LAB_DIRECTION_WORDS: Final[dict[str, int]] = {"up": 1, "down": -1}
#: Known direction with severity of common labs outside the input contract, taken when a
#: declaration names none (+1 up, -1 down; as :data:`LAB_DIRECTION`).
KNOWN_LAB_DIRECTION: Final[dict[str, int]] = {
    "crp": 1,
    "hs_crp": 1,
    "ferritin": 1,
    "il6": 1,
    "il_6": 1,
    "troponin": 1,
    "procalcitonin": 1,
    "fibrinogen": 1,
    "creatinine": 1,
    "urea": 1,
    "bun": 1,
    "ast": 1,
    "alt": 1,
    "bilirubin": 1,
    "wbc": 1,
    "lactate": 1,
    "bnp": 1,
    "nt_probnp": 1,
    "spo2": -1,
    "albumin": -1,
    "platelet_count": -1,
}

#: Common spellings of the column names (after header normalisation: lower case, units in
#: brackets dropped, ``%`` as ``pct``, every run of other characters as ``_``) and the name each means.
COLUMN_SYNONYMS: Final[dict[str, str]] = {
    "patient": PATIENT,
    "patientid": PATIENT,
    "patient_no": PATIENT,
    "patient_number": PATIENT,
    "id": PATIENT,
    "days_since_onset": DAY,
    "day_since_onset": DAY,
    "days_from_onset": DAY,
    "days_after_onset": DAY,
    "days_since_symptom_onset": DAY,
    "ct": CT,
    "ct_total": CT,
    "total_ct_score": CT,
    "chest_ct_score": CT,
    "death": DIED,
    "dead": DIED,
    "deceased": DIED,
    "gender": SEX,
    "neutrophil_lymphocyte_ratio": "nlr",
    "neutrophil_to_lymphocyte_ratio": "nlr",
    "lymphocytes_count": "lymphocyte_count",
    "absolute_lymphocyte_count": "lymphocyte_count",
    "lymphocytes_pct": "lymphocyte_pct",
    "lymphocyte_percent": "lymphocyte_pct",
    "lymphocyte_percentage": "lymphocyte_pct",
    "neutrophils_pct": "neutrophil_pct",
    "neutrophil_percent": "neutrophil_pct",
    "neutrophil_percentage": "neutrophil_pct",
    "neutrophils_count": "neutrophil_count",
    "absolute_neutrophil_count": "neutrophil_count",
    "ddimer": "d_dimer",
    "lactate_dehydrogenase": "ldh",
    "erythrocyte_sedimentation_rate": "esr",
    "symptom_onset": ONSET_DATE,
    "symptom_onset_date": ONSET_DATE,
    "date_of_onset": ONSET_DATE,
    "onset_of_symptoms": ONSET_DATE,
    "ct_date": SCAN_DATE,
    "date_of_scan": SCAN_DATE,
    "visit_date": SCAN_DATE,
    "date_of_visit": SCAN_DATE,
    "date_of_admission": ADMISSION_DATE,
}

#: All serial markers in reporting order: the CT score first, then the labs.
MARKERS: Final[tuple[str, ...]] = (CT, *LABS)

#: Human-readable names, for tables and figures.
MARKER_LABELS: Final[dict[str, str]] = {
    CT: "CT score",
    "nlr": "NLR",
    "lymphocyte_count": "Lymphocyte count (G/L)",
    "lymphocyte_pct": "Lymphocyte %",
    "neutrophil_pct": "Neutrophil %",
    "d_dimer": "D-dimer (mg/L)",
    "ldh": "LDH (U/L)",
    "esr": "ESR (mm/h)",
}
#: Labels of the labs of :data:`KNOWN_LAB_DIRECTION`, when declared (any other declared lab: its name).
KNOWN_LAB_LABELS: Final[dict[str, str]] = {
    "crp": "CRP",
    "hs_crp": "hs-CRP",
    "ferritin": "Ferritin",
    "il6": "IL-6",
    "il_6": "IL-6",
    "troponin": "Troponin",
    "procalcitonin": "Procalcitonin",
    "fibrinogen": "Fibrinogen",
    "creatinine": "Creatinine",
    "urea": "Urea",
    "bun": "BUN",
    "ast": "AST",
    "alt": "ALT",
    "bilirubin": "Bilirubin",
    "wbc": "WBC",
    "lactate": "Lactate",
    "bnp": "BNP",
    "nt_probnp": "NT-proBNP",
    "spo2": "SpO2 %",
    "albumin": "Albumin",
    "platelet_count": "Platelet count",
}

#: Periods since symptom onset, exactly as the paper labels them.
PERIOD_LABELS: Final[tuple[str, ...]] = ("0-5", "6-10", "11-15", "16-20", ">20")
#: Right-closed upper edges of the periods: day <= 5 is "0-5", 5 < day <= 10 is "6-10", ...
PERIOD_EDGES: Final[tuple[float, ...]] = (5.0, 10.0, 15.0, 20.0)

#: Outcome group labels used in tables.
GROUP_LABELS: Final[dict[int, str]] = {0: "survivor", 1: "nonsurvivor"}

#: The paper's colour bands for the mortality grid (upper edges, right-open).
RISK_BANDS: Final[tuple[tuple[str, float, float], ...]] = (
    ("green", 0.0, 0.05),
    ("yellow", 0.05, 0.30),
    ("red", 0.30, 0.50),
    ("blue", 0.50, 1.0000001),
)

#: Convergence gates every fit is judged by.
GATE_RHAT_MAX: Final[float] = 1.01
GATE_ESS_MIN: Final[float] = 400.0
GATE_BFMI_MIN: Final[float] = 0.3
