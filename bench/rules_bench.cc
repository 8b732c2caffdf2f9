// Rule evaluation speed: 100 typical mercure-style rules on the tags of one series.
//
// The target (docs/rules.md) is at least one million rule evaluations per second on one core.
// BM_EvaluateRules is the router's path (Detail::kOutcome); BM_EvaluateRulesExplained builds
// the full explanation as `ferry rules eval --explain` does; BM_TagLookup is the per-series
// cost of building the case-insensitive index; BM_CompileRules is the config-load cost.
// Run: build/bench/rules_bench (items_per_second = rule evaluations per second).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "rules/rule.h"

namespace {

using ferry::rules::CompiledRule;
using ferry::rules::Detail;
using ferry::rules::TagLookup;

// The tags of an MR head series as mercure's getdcmtags writes them (about 100).
TagLookup::Map SeriesTags() {
  TagLookup::Map tags = {
      {"SpecificCharacterSet", "ISO_IR 100"},
      {"ImageType", "ORIGINAL\\PRIMARY\\M\\ND\\NORM"},
      {"SOPClassUID", "1.2.840.10008.5.1.4.1.1.4"},
      {"SOPInstanceUID", "1.3.12.2.1107.5.2.43.167017.2024031209154367913503"},
      {"StudyDate", "20240312"},
      {"SeriesDate", "20240312"},
      {"AcquisitionDate", "20240312"},
      {"ContentDate", "20240312"},
      {"StudyTime", "090512.123000"},
      {"SeriesTime", "091543.456000"},
      {"AccessionNumber", "A20240312-0042"},
      {"Modality", "MR"},
      {"Manufacturer", "SIEMENS"},
      {"InstitutionName", "University Hospital"},
      {"InstitutionAddress", "Main Street 1, Springfield"},
      {"ReferringPhysicianName", "Smith^Anna"},
      {"StationName", "MRC41234"},
      {"StudyDescription", "MRI Brain w/o contrast"},
      {"SeriesDescription", "t1_mprage_sag_p2_iso"},
      {"InstitutionalDepartmentName", "Radiology"},
      {"PerformingPhysicianName", ""},
      {"OperatorsName", "TECH^ONE"},
      {"ManufacturerModelName", "Prisma"},
      {"PatientName", "Doe^John"},
      {"PatientID", "P0012345"},
      {"PatientBirthDate", "19700101"},
      {"PatientSex", "M"},
      {"PatientAge", "054Y"},
      {"PatientSize", "1.8"},
      {"PatientWeight", "82"},
      {"BodyPartExamined", "HEAD"},
      {"ScanningSequence", "GR\\IR"},
      {"SequenceVariant", "SK\\SP\\MP"},
      {"ScanOptions", "IR"},
      {"MRAcquisitionType", "3D"},
      {"SequenceName", "*tfl3d1_16ns"},
      {"AngioFlag", "N"},
      {"SliceThickness", "1"},
      {"RepetitionTime", "2300"},
      {"EchoTime", "2.32"},
      {"InversionTime", "900"},
      {"NumberOfAverages", "1"},
      {"ImagingFrequency", "123.2"},
      {"ImagedNucleus", "1H"},
      {"EchoNumbers", "1"},
      {"MagneticFieldStrength", "3"},
      {"NumberOfPhaseEncodingSteps", "255"},
      {"EchoTrainLength", "1"},
      {"PercentSampling", "100"},
      {"PercentPhaseFieldOfView", "100"},
      {"PixelBandwidth", "200"},
      {"DeviceSerialNumber", "167017"},
      {"SoftwareVersions", "syngo MR XA30"},
      {"ProtocolName", "t1_mprage_sag_p2_iso"},
      {"TransmitCoilName", "Body"},
      {"AcquisitionMatrix", "0\\256\\256\\0"},
      {"InPlanePhaseEncodingDirection", "ROW"},
      {"FlipAngle", "8"},
      {"VariableFlipAngleFlag", "N"},
      {"SAR", "0.0478"},
      {"PatientPosition", "HFS"},
      {"StudyInstanceUID", "1.3.12.2.1107.5.2.43.167017.30000024031206543210900000012"},
      {"SeriesInstanceUID", "1.3.12.2.1107.5.2.43.167017.2024031209154312345678901.0.0.0"},
      {"StudyID", "1"},
      {"SeriesNumber", "5"},
      {"AcquisitionNumber", "1"},
      {"InstanceNumber", "1"},
      {"ImagePositionPatient", "-95.5\\-120.1\\140.3"},
      {"ImageOrientationPatient", "0\\1\\0\\0\\0\\-1"},
      {"FrameOfReferenceUID", "1.3.12.2.1107.5.2.43.167017.1.20240312090512345.0.0.0"},
      {"PositionReferenceIndicator", ""},
      {"SliceLocation", "-95.5"},
      {"SamplesPerPixel", "1"},
      {"PhotometricInterpretation", "MONOCHROME2"},
      {"Rows", "256"},
      {"Columns", "256"},
      {"PixelSpacing", "1\\1"},
      {"BitsAllocated", "16"},
      {"BitsStored", "12"},
      {"HighBit", "11"},
      {"PixelRepresentation", "0"},
      {"WindowCenter", "600"},
      {"WindowWidth", "1200"},
      {"RequestedProcedureDescription", "MRI BRAIN"},
      {"PerformedProcedureStepDescription", "MRI Brain w/o contrast"},
      {"RequestingPhysician", "Miller^Tom"},
      {"ScheduledProcedureStepDescription", "MRI BRAIN"},
      {"MediaStorageSOPClassUID", "1.2.840.10008.5.1.4.1.1.4"},
      {"SenderAddress", "10.0.0.17"},
      {"SenderAET", "MRC41234"},
      {"ReceiverAET", "FERRY"},
      {"Filename", "1.3.12.2.1107.5.2.43.167017.2024031209154367913503.dcm"},
      {"NumberOfFrames", ""},
      {"ContrastBolusAgent", ""},
      {"AcquisitionDuration", "320"},
      {"0019,100c", "1000"},
      {"0019,100d", "DIRECTIONAL"},
      {"0051,100f", "HC1-7"},
      {"0029,1008", "IMAGE NUM 4"},
  };
  return tags;
}

// 100 rules of the kinds mercure installations use: modality and description tests, string
// methods, numeric thresholds, tags.Name and presence tests, a few regular expressions. About
// one in ten reads a tag the series does not have.
std::vector<std::string> TypicalRules() {
  std::vector<std::string> base = {
      "@Modality@ == 'MR' and 'head' in @BodyPartExamined@.lower()",
      "'CINE' in @SeriesDescription@",
      "'mprage' in tags.SeriesDescription.lower()",
      "tags.SeriesDescription == 'CINE'",
      "@SeriesDescription@.lower().startswith('t1')",
      "float(tags.SliceThickness) < 2.0",
      "@Modality@ in ('CT', 'PT')",
      "@Modality@ == 'MR' and float(@MagneticFieldStrength@) >= 3",
      "('Tr' in @ManufacturerModelName@) | (@ManufacturerModelName@ == 'Trio')",
      "@StationName@ == 'MRC41234' and @SenderAET@ != 'PACS'",
      "'DERIVED' not in @ImageType@",
      "'ORIGINAL' in @ImageType@.split('\\\\')",
      "int(@SeriesNumber@) < 100",
      "@StudyDescription@.upper().find('BRAIN') >= 0",
      "tags.modality == 'MR' and tags.bodypartexamined == 'HEAD'",
      "'PatientAge' in tags and int(tags.PatientAge[:3]) >= 18",
      "@Manufacturer@.upper() in ('SIEMENS', 'GE MEDICAL SYSTEMS', 'PHILIPS')",
      "matches(@SeriesDescription@, '(?i)t1.*mprage')",
      "matches(@ProtocolName@, '^t[12]_')",
      "@InstitutionName@ == 'University Hospital' and @Modality@ != 'SR'",
      "float(@RepetitionTime@) > 1000 and float(@EchoTime@) < 10",
      "@SeriesDescription@.endswith('_iso')",
      "@MRAcquisitionType@ == '3D' and int(@Rows@) >= 256",
      "@ReceiverAET@ == 'FERRY' and @SenderAddress@.startswith('10.')",
      "len(@AccessionNumber@) > 0",
      "not @ContrastBolusAgent@",
      "tags['0019,100c'] == '1000'",
      "@ScanningSequence@.split('\\\\')[0] in ('GR', 'SE')",
      "@PatientSex@ == 'F' and @Modality@ == 'MG'",
      "@Modality@ == 'CT' and 'chest' in @StudyDescription@.lower()",
      // A tag this series does not have.
      "@ContrastBolusRoute@ == 'IV'",
  };
  std::vector<std::string> rules;
  for (size_t i = 0; rules.size() < 100; ++i) {
    rules.push_back(base[i % base.size()]);
  }
  return rules;
}

std::vector<CompiledRule> CompileAll() {
  std::vector<CompiledRule> compiled;
  for (const std::string& text : TypicalRules()) {
    auto rule = CompiledRule::Compile(text);
    if (!rule) {
      std::fprintf(stderr, "rule does not compile: %s: %s\n", text.c_str(),
                   rule.error().message().c_str());
      std::abort();
    }
    compiled.push_back(*rule);
  }
  return compiled;
}

void EvaluateRules(benchmark::State& state, Detail detail) {
  const TagLookup::Map tags = SeriesTags();
  const TagLookup lookup(tags);
  const std::vector<CompiledRule> rules = CompileAll();
  int triggered = 0;
  for (auto _ : state) {
    for (const CompiledRule& rule : rules) {
      triggered += rule.Evaluate(lookup, detail).triggered();
    }
  }
  benchmark::DoNotOptimize(triggered);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(rules.size()));
}

void BM_EvaluateRules(benchmark::State& state) { EvaluateRules(state, Detail::kOutcome); }
BENCHMARK(BM_EvaluateRules);

void BM_EvaluateRulesExplained(benchmark::State& state) { EvaluateRules(state, Detail::kFull); }
BENCHMARK(BM_EvaluateRulesExplained);

void BM_TagLookup(benchmark::State& state) {
  const TagLookup::Map tags = SeriesTags();
  for (auto _ : state) {
    TagLookup lookup(tags);
    benchmark::DoNotOptimize(lookup);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TagLookup);

void BM_CompileRules(benchmark::State& state) {
  const std::vector<std::string> texts = TypicalRules();
  for (auto _ : state) {
    for (const std::string& text : texts) {
      auto rule = CompiledRule::Compile(text);
      benchmark::DoNotOptimize(rule);
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(texts.size()));
}
BENCHMARK(BM_CompileRules);

}  // namespace

BENCHMARK_MAIN();
