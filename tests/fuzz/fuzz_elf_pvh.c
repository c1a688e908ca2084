/* fuzz_elf_pvh - the x86 ELF (PVH entry note) loader (arch/x86/boot.c) on a hostile kernel file
 * (x86_kernel.h). The ELF magic is forced at offset 0 so every input takes the ELF path
 * (fuzz_bzimage has the bzImage one). */
#include "x86_kernel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_x86_kernel(data, size, 64, 0, "\177ELF", 4);
}
