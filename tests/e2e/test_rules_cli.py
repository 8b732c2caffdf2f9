"""`ferry rules eval`: one rule against tags from a JSON file or a DICOM file.

The first line of output is exactly `trigger`, `reject` or `error: <message>`; the exit code is
0 for trigger and reject, 2 for an error. --explain adds lines about the tags read and why.
"""
import json
import unittest

from ferrytest import FERRY_BIN, FerryTestCase, make_instance, run

TAGS = {
    "Modality": "MR",
    "SeriesDescription": "T1 MPRAGE sag",
    "BodyPartExamined": "HEAD",
    "PatientName": "Doe^John",
    "SliceThickness": "1.5",
    "ImageType": "ORIGINAL\\PRIMARY\\M\\ND",
    "InstitutionName": "Klinik M\u00fcnchen",
}


class RulesEvalTest(FerryTestCase):

    def tags_file(self, tags=None, name="series.tags", raw=None):
        path = self.file(name)
        with open(path, "w", encoding="utf-8") as f:
            if raw is not None:
                f.write(raw)
            else:
                json.dump(TAGS if tags is None else tags, f, ensure_ascii=False)
        return path

    def eval(self, rule, *extra, tags=None, tags_path=None):
        path = tags_path or self.tags_file(tags)
        return run([FERRY_BIN, "rules", "eval", "--rule", rule, "--tags", path, *extra], timeout=60)

    def assert_one_line(self, p, first, code):
        self.assertEqual(p.returncode, code, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(len(lines), 1, p.stdout)
        if first.endswith("*"):
            self.assertTrue(lines[0].startswith(first[:-1]), lines[0])
        else:
            self.assertEqual(lines[0], first)

    def test_trigger_and_reject(self):
        self.assert_one_line(self.eval("@Modality@ == 'MR' and 'head' in @BodyPartExamined@.lower()"),
                             "trigger", 0)
        self.assert_one_line(self.eval("@Modality@ == 'CT'"), "reject", 0)

    def test_mercure_documented_examples(self):
        cases = [
            ("'CINE' in tags.SeriesDescription", {"SeriesDescription": "CINE 2ch"}, "trigger"),
            ("'CINE' in @SeriesDescription@", {"SeriesDescription": "T2 ax"}, "reject"),
            ("tags.SeriesDescription == 'CINE'", {"SeriesDescription": "CINE"}, "trigger"),
            ("tags.SeriesDescription.lower() == 'cine'", {"SeriesDescription": "Cine"}, "trigger"),
            ("float(tags.SliceThickness) < 2.0", {"SliceThickness": "1.25"}, "trigger"),
            ("float(tags.SliceThickness) < 2.0", {"SliceThickness": "3"}, "reject"),
            ("@SeriesDescription@.lower().startswith('t1')", {"SeriesDescription": "T1 sag"},
             "trigger"),
        ]
        for rule, tags, expected in cases:
            with self.subTest(rule=rule, tags=tags):
                self.assert_one_line(self.eval(rule, tags=tags), expected, 0)

    def test_missing_tag_rejects_and_explains(self):
        self.assert_one_line(self.eval("@PatientAge@ > '040Y'"), "reject", 0)
        p = self.eval("@Modality@ == 'MR' and tags.PatientAge > '040Y'", "--explain")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "reject")
        self.assertIn("  read Modality = 'MR'", lines)
        self.assertIn("  read PatientAge = <missing>", lines)
        self.assertIn("  because: tag PatientAge is missing", lines)

    def test_explain_lists_tags_read_and_value(self):
        p = self.eval("tags.seriesdescription.split()[0] == 'T1' and @InstitutionName@", "--explain")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "trigger")
        self.assertEqual(lines[1:], ["  read InstitutionName = 'Klinik M\u00fcnchen'",
                                     "  read SeriesDescription = 'T1 MPRAGE sag'",
                                     "  value: 'Klinik M\u00fcnchen'"])
        p = self.eval("@Modality@ == 'CT'", "--explain")
        self.assertEqual(p.stdout.splitlines(),
                         ["reject", "  read Modality = 'MR'", "  value: False",
                          "  because: the rule's value is False"])

    def test_runtime_error_exits_2(self):
        p = self.eval("int(@SliceThickness@) > 1")
        self.assert_one_line(p, "error: ValueError: invalid literal for int() with base 10: '1.5'*", 2)
        self.assert_one_line(self.eval("1/0"), "error: ZeroDivisionError: division by zero*", 2)
        self.assert_one_line(self.eval("@Modality@ < 3"), "error: TypeError:*", 2)

    def test_syntax_error_names_the_column(self):
        p = self.eval("@Modality@ == = 'MR'")
        self.assert_one_line(p, "error: syntax error at column 15: *", 2)
        p = self.eval("@Modality@ == = 'MR'", "--explain")
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stdout.splitlines()[1:], ["  @Modality@ == = 'MR'",
                                                     "                ^"])

    def test_refused_constructs_are_errors(self):
        for rule in ["'a' if True else 'b'", "[x for x in 'ab']", "f'{1}'", "lambda: 1",
                     "import os", "__import__('os')", "tags.__class__", "().__class__",
                     "(1).real", "a = 1", "(a := 1)"]:
            with self.subTest(rule=rule):
                p = self.eval(rule)
                self.assert_one_line(p, "error: syntax error at column *", 2)

    def test_matches_uses_re2(self):
        self.assert_one_line(self.eval("matches(@SeriesDescription@, r'(?i)mprage\\s+sag$')"),
                             "trigger", 0)
        self.assert_one_line(self.eval("matches(@SeriesDescription@, '^MPRAGE')"), "reject", 0)
        # A pattern that would backtrack catastrophically finishes at once with RE2.
        self.assert_one_line(self.eval("matches(@X@, '^(a|aa)+$')", tags={"X": "a" * 3000 + "!"}),
                             "reject", 0)
        self.assert_one_line(self.eval("matches(@Modality@, '(')"),
                             "error: syntax error at column 21: invalid regular expression*", 2)

    def test_config_option_is_accepted(self):
        p = run([FERRY_BIN, "rules", "eval", "--config", self.file("absent.json"), "--rule",
                 "True", "--tags", self.tags_file()], timeout=60)
        self.assert_one_line(p, "trigger", 0)

    def test_bad_input(self):
        p = self.eval("True", tags_path=self.tags_file(raw="{not json"))
        self.assert_one_line(p, "error: *", 2)
        self.assertIn("not valid JSON", p.stdout)
        p = self.eval("True", tags_path=self.tags_file(raw='{"SeriesNumber": 5}'))
        self.assert_one_line(p, "error: *", 2)
        self.assertIn('"SeriesNumber"', p.stdout)
        self.assertIn("must be strings", p.stdout)
        p = self.eval("True", tags_path=self.tags_file(raw='["Modality"]'))
        self.assert_one_line(p, "error: *", 2)
        p = self.eval("True", tags_path=self.file("does-not-exist.tags"))
        self.assert_one_line(p, "error: *", 2)
        p = run([FERRY_BIN, "rules", "eval", "--rule", "True"], timeout=60)
        self.assert_one_line(p, "error: give exactly one of --tags FILE and --dicom FILE", 2)
        p = run([FERRY_BIN, "rules", "eval", "--rule", "True", "--tags", self.tags_file(),
                 "--dicom", self.tags_file()], timeout=60)
        self.assert_one_line(p, "error: give exactly one of --tags FILE and --dicom FILE", 2)

    def test_dicom_file(self):
        path = self.file("ct.dcm")
        make_instance(path, modality="CT", series_description="Thorax 1.0 B70f",
                      patient="M\u00fcller^Hans", extra={"BodyPartExamined": "CHEST"})
        def dicom_eval(rule, *extra):
            return run([FERRY_BIN, "rules", "eval", "--rule", rule, "--dicom", path, *extra],
                       timeout=60)
        self.assert_one_line(dicom_eval("@Modality@ == 'CT' and 'chest' in tags.bodypartexamined"
                                        ".lower()"), "trigger", 0)
        self.assert_one_line(dicom_eval("tags.PatientName.startswith('M\u00fcller')"), "trigger", 0)
        self.assert_one_line(dicom_eval("@Modality@ == 'MR'"), "reject", 0)
        # mercure's fixed keys are present (empty) even when the element is not.
        self.assert_one_line(dicom_eval("'StudyDescription' in tags and not @StudyDescription@"),
                             "trigger", 0)
        p = dicom_eval("int(@Rows@) == 16", "--explain")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.splitlines()[:2], ["trigger", "  read Rows = '16'"])
        not_dicom = self.tags_file()
        p = run([FERRY_BIN, "rules", "eval", "--rule", "True", "--dicom", not_dicom], timeout=60)
        self.assert_one_line(p, "error: *", 2)


if __name__ == "__main__":
    unittest.main()
