/* Per-vCPU CPUID: APIC ids, topology leaves, hypervisor bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/cpu.h"

static struct kvm_cpuid2 *base_table(void)
{
	static const struct kvm_cpuid_entry2 e[] = {
		{ .function = 0x0, .eax = 0x1f },
		{ .function = 0x1, .eax = 0x800f12, .ebx = 0x00000800, .ecx = 0x0, .edx = 0x0 },
		{ .function = 0x4, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0xfc004121 },
		{ .function = 0xb, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX },
		{ .function = 0xb, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX },
		{ .function = 0xb, .index = 2, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX },
		{ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b },
		{ .function = 0x80000001, .ecx = 1u << 22 | 1u << 0 },
		{ .function = 0x80000008, .eax = 0x3030, .ecx = 0x7007 },
	};
	size_t n = sizeof(e) / sizeof(e[0]);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(e[0]));

	c->nent = (uint32_t)n;
	memcpy(c->entries, e, sizeof(e));
	return c;
}

static void test_leaf1_apic_id_and_count(void **state)
{
	struct kvm_cpuid2 *b = base_table();
	struct kvm_cpuid2 *c = x86_vcpu_cpuid(b, 3, 4);
	struct kvm_cpuid_entry2 *e = x86_cpuid_find(c, 1, 0);

	assert_non_null(e);
	assert_int_equal(e->ebx >> 24, 3);
	assert_int_equal((e->ebx >> 16) & 0xff, 4);
	assert_int_equal(e->ebx & 0xffff, 0x0800); /* CLFLUSH size kept */
	assert_true(e->ecx & (1u << 31));          /* hypervisor */
	assert_true(e->edx & (1u << 28));          /* HTT with >1 CPU */
	free(c);
	c = x86_vcpu_cpuid(b, 0, 1);
	e = x86_cpuid_find(c, 1, 0);
	assert_false(e->edx & (1u << 28));
	free(c);
	free(b);
}

static void test_leaf_b_topology(void **state)
{
	struct kvm_cpuid2 *b = base_table();
	struct kvm_cpuid2 *c = x86_vcpu_cpuid(b, 5, 6);
	struct kvm_cpuid_entry2 *smt = x86_cpuid_find(c, 0xb, 0);
	struct kvm_cpuid_entry2 *core = x86_cpuid_find(c, 0xb, 1);
	struct kvm_cpuid_entry2 *end = x86_cpuid_find(c, 0xb, 2);

	assert_non_null(smt);
	assert_non_null(core);
	assert_non_null(end);
	assert_int_equal(smt->ebx, 1);
	assert_int_equal((smt->ecx >> 8) & 0xff, 1);
	assert_int_equal(core->eax, 3); /* 6 CPUs need 3 bits */
	assert_int_equal(core->ebx, 6);
	assert_int_equal((core->ecx >> 8) & 0xff, 2);
	assert_int_equal(end->ebx, 0);
	assert_int_equal((end->ecx >> 8) & 0xff, 0);
	assert_int_equal(smt->edx, 5);
	assert_int_equal(core->edx, 5);
	assert_int_equal(end->edx, 5);
	free(c);
	free(b);
}

static void test_leaf4_and_amd(void **state)
{
	struct kvm_cpuid2 *b = base_table();
	struct kvm_cpuid2 *c = x86_vcpu_cpuid(b, 1, 2);

	assert_int_equal(x86_cpuid_find(c, 4, 0)->eax >> 26, 1);
	assert_int_equal(x86_cpuid_find(c, 0x80000008, 0)->ecx & 0xff, 1);
	assert_int_equal((x86_cpuid_find(c, 0x80000008, 0)->ecx >> 12) & 0xf, 1);
	assert_false(x86_cpuid_find(c, 0x80000001, 0)->ecx & (1u << 22)); /* TOPOEXT off */
	assert_true(x86_cpuid_find(c, 0x80000001, 0)->ecx & 1u);          /* others kept */
	assert_int_equal(x86_cpuid_find(c, 0x40000000, 0)->ebx, 0x4b4d564b);
	assert_null(x86_cpuid_find(c, 0xb, 7));
	/* The base table is not modified. */
	assert_int_equal(x86_cpuid_find(b, 1, 0)->ebx, 0x0800);
	free(c);
	free(b);
}

/* AMD signatures of families with a northbridge GART become family 0x11 (model and stepping
 * kept); other families and other vendors are left alone. */
static void test_no_gart_family(void **state)
{
	struct kvm_cpuid2 *b = base_table(), *c;
	/* family 0xf model 107 stepping 1: QEMU's TCG "max" CPU */
	uint32_t k8 = 0x0f << 8 | 0x6 << 16 | 0xb << 4 | 1;

	assert_int_equal(x86_cpuid_no_gart_signature(k8), 0x0f << 8 | 0x2 << 20 | 0x6 << 16 | 0xb << 4 | 1);
	assert_int_equal(x86_cpuid_no_gart_signature(0x00100f42), 0x00200f42); /* 0x10 Phenom II */
	assert_int_equal(x86_cpuid_no_gart_signature(0x00600f12), 0x00200f12); /* 0x15 model 1 */
	assert_int_equal(x86_cpuid_no_gart_signature(0x00610f01), 0x00610f01); /* 0x15 model 0x10 */
	assert_int_equal(x86_cpuid_no_gart_signature(0x00a20f12), 0x00a20f12); /* 0x19 Zen 3 */
	assert_int_equal(x86_cpuid_no_gart_signature(0x000006f6), 0x000006f6); /* family 6 */
	/* In the vCPU table: leaf 1 and 0x80000001 on AMD; not with another vendor. */
	x86_cpuid_find(b, 1, 0)->eax = k8;
	x86_cpuid_find(b, 0x80000001, 0)->eax = k8;
	x86_cpuid_find(b, 0, 0)->ebx = 0x68747541;
	x86_cpuid_find(b, 0, 0)->edx = 0x69746e65;
	x86_cpuid_find(b, 0, 0)->ecx = 0x444d4163;
	c = x86_vcpu_cpuid(b, 0, 1);
	assert_int_equal(x86_cpuid_find(c, 1, 0)->eax, x86_cpuid_no_gart_signature(k8));
	assert_int_equal(x86_cpuid_find(c, 0x80000001, 0)->eax, x86_cpuid_no_gart_signature(k8));
	free(c);
	x86_cpuid_find(b, 0, 0)->ebx = 0x756e6547; /* "Genu" */
	c = x86_vcpu_cpuid(b, 0, 1);
	assert_int_equal(x86_cpuid_find(c, 1, 0)->eax, k8);
	free(c);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaf1_apic_id_and_count),
		cmocka_unit_test(test_leaf_b_topology),
		cmocka_unit_test(test_leaf4_and_amd),
		cmocka_unit_test(test_no_gart_family),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
