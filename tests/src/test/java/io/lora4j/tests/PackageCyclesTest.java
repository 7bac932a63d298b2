package io.lora4j.tests;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;

import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * No package of lora4j depends on itself through others: kernels ← model.arch ← format, lora,
 * block ← model ← train ← tornado ← cli (ArchUnit reads the compiled classes of every module).
 */
class PackageCyclesTest {

    @Test
    void theProductionPackagesHaveNoCycles() {
        JavaClasses classes = new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("io.lora4j");
        for (String c : new String[]{"io.lora4j.kernels.Matmul", "io.lora4j.model.Llama", "io.lora4j.model.train.Trainer",
                "io.lora4j.tornado.TornadoBackend", "io.lora4j.cli.Main"}) {
            assertTrue(classes.contain(c), c + " was imported: every module is checked");
        }
        slices().matching("io.lora4j.(**)").should().beFreeOfCycles().check(classes);
    }
}
