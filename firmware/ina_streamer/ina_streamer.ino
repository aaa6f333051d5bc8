// ina_streamer: a reference INA226 / INA228 current streamer for edgebench's
// `ina-csv` meter (--meter ina-csv:/dev/ttyACM0).
//
// Output, one line per conversion, 921600 baud 8N1:
//   <t_us>,<current_mA>,<bus_mV>\n
// t_us is micros(): the MCU's own 32-bit microsecond counter. It wraps every
// ~71.6 minutes; edgebench unwraps it and maps it onto the board's clock.
// Lines starting with '#' and the header line are ignored by the reader.
//
// Wiring: INA2xx on I2C (SDA/SCL, 3.3 V), shunt in series with the board's
// supply. Any Arduino-core MCU with a fast UART or native USB works
// (RP2040, ESP32-S3, SAMD51, Teensy 4). Build with the Arduino IDE or
// arduino-cli: arduino-cli compile -b rp2040:rp2040:rpipico firmware/ina_streamer
//
// Register facts from the TI datasheets (SBOS547 INA226, SBOSA20 INA228):
//   INA226: CAL (0x05) = 0.00512 / (CURRENT_LSB * R_SHUNT), CURRENT_LSB = I_MAX / 2^15,
//           CURRENT (0x04) signed 16-bit x CURRENT_LSB, BUS (0x02) x 1.25 mV.
//   INA228: SHUNT_CAL (0x02) = 13107.2e6 * CURRENT_LSB * R_SHUNT, CURRENT_LSB = I_MAX / 2^19,
//           CURRENT (0x07) and VBUS (0x05) are 24-bit registers holding a 20-bit
//           value in bits 23..4 (current signed), VBUS x 195.3125 uV.

#include <Wire.h>

// ---- configuration ------------------------------------------------------
#define SENSOR_INA228 1        // 1: INA228 (20-bit), 0: INA226 (16-bit)
#define I2C_ADDR 0x40
#define R_SHUNT_OHM 0.010f     // 10 mOhm: ~4 A full scale on the INA228 at +-40.96 mV
#define I_MAX_A 4.0f
#define BAUD 921600
// Conversion settings trade rate for noise. Each line is ~24 bytes, so a
// 921600-baud link carries ~3800 lines/s; stay under it or lines are lost
// (edgebench counts the gap from t_us).
#define INA226_CONFIG 0x4127   // AVG=1, VBUSCT=VSHCT=1.1 ms, continuous shunt+bus
#define INA228_ADC_CONFIG 0xB000 | (0x2 << 9) | (0x2 << 6) | (0x2 << 3) | 0x0  // cont. bus+shunt, 150 us, AVG 1
// --------------------------------------------------------------------------

#if SENSOR_INA228
static const float CURRENT_LSB = I_MAX_A / 524288.0f;  // 2^19
#else
static const float CURRENT_LSB = I_MAX_A / 32768.0f;   // 2^15
#endif

static void write16(uint8_t reg, uint16_t v) {
  Wire.beginTransmission(I2C_ADDR);
  Wire.write(reg);
  Wire.write(v >> 8);
  Wire.write(v & 0xFF);
  Wire.endTransmission();
}

static uint32_t readN(uint8_t reg, uint8_t n) {
  Wire.beginTransmission(I2C_ADDR);
  Wire.write(reg);
  Wire.endTransmission(false);
  Wire.requestFrom((int)I2C_ADDR, (int)n);
  uint32_t v = 0;
  for (uint8_t i = 0; i < n && Wire.available(); i++) v = (v << 8) | Wire.read();
  return v;
}

void setup() {
  Serial.begin(BAUD);
  Wire.begin();
  Wire.setClock(1000000);  // fast-mode plus: register reads must not limit the line rate
#if SENSOR_INA228
  write16(0x00, 0x8000);   // reset
  delay(2);
  write16(0x01, INA228_ADC_CONFIG);
  write16(0x02, (uint16_t)(13107.2e6f * CURRENT_LSB * R_SHUNT_OHM));
  Serial.println(F("# ina_streamer v1 INA228"));
#else
  write16(0x00, 0x8000);   // reset
  delay(2);
  write16(0x00, INA226_CONFIG);
  write16(0x05, (uint16_t)(0.00512f / (CURRENT_LSB * R_SHUNT_OHM)));
  Serial.println(F("# ina_streamer v1 INA226"));
#endif
  Serial.print(F("# shunt_ohm="));
  Serial.println(R_SHUNT_OHM, 4);
  Serial.println(F("t_us,current_mA,bus_mV"));
}

static bool conversion_ready() {
#if SENSOR_INA228
  return readN(0x0B, 2) & (1u << 1);  // DIAG_ALRT.CNVRF
#else
  return readN(0x06, 2) & (1u << 3);  // MASK/ENABLE.CVRF
#endif
}

void loop() {
  while (!conversion_ready()) {
  }  // one line per fresh conversion, never a repeated value
  uint32_t t = micros();  // stamp at the read: the conversion just finished
#if SENSOR_INA228
  int32_t raw_i = (int32_t)(readN(0x07, 3) << 8) >> 12;  // sign-extend the 20-bit value
  uint32_t raw_v = readN(0x05, 3) >> 4;
  float ma = raw_i * CURRENT_LSB * 1000.0f;
  float mv = raw_v * 0.1953125f;
#else
  int16_t raw_i = (int16_t)readN(0x04, 2);
  uint16_t raw_v = (uint16_t)readN(0x02, 2);
  float ma = raw_i * CURRENT_LSB * 1000.0f;
  float mv = raw_v * 1.25f;
#endif
  // integer formatting: printf("%f") is missing or slow on small cores
  int32_t milli = (int32_t)(ma * 1000.0f);
  int32_t mag = milli < 0 ? -milli : milli;
  char line[48];
  snprintf(line, sizeof line, "%lu,%s%ld.%03ld,%lu\n", (unsigned long)t, milli < 0 ? "-" : "",
           (long)(mag / 1000), (long)(mag % 1000), (unsigned long)mv);
  Serial.write(line);
}
