/* fuzz_bzimage - the x86 bzImage loader (arch/x86/boot.c) on a hostile kernel file
 * (x86_kernel.h). The "HdrS" magic is forced at 0x202 so every input takes the bzImage path
 * (fuzz_elf_pvh has the ELF one). */
#include "x86_kernel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_x86_kernel(data, size, 0x206, 0x202, "HdrS", 4);
}
